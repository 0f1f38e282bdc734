package charter

import (
	"errors"
	"fmt"
)

// ReadChain reads charter versions 1..n from paths, oldest first, checks
// each against the one before it (VerifySignatures) and returns the last:
// the charter in force. Every command that acts on a charter's authority
// (orders, custody, verification, drill audits) loads it this way,
// because a charter read alone, unsigned or forged, would hand that
// authority to whoever wrote the file. Errors name the file at fault.
func ReadChain(paths []string) (*Charter, error) {
	if len(paths) == 0 {
		return nil, errors.New("charter chain: no charter given")
	}
	var prev *Charter
	for i, p := range paths {
		c, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		if i == 0 && c.Version != 1 {
			return nil, fmt.Errorf("charter %s is version %d: version 1 is needed to verify it (give every version from 1 on, oldest first)", p, c.Version)
		}
		if err := VerifySignatures(c, prev); err != nil {
			return nil, fmt.Errorf("charter chain: %s (version %d of the chain): %w", p, i+1, err)
		}
		prev = c
	}
	return prev, nil
}
