package keyfile

import (
	"bytes"
	"fmt"
	"strings"

	"filippo.io/age"
)

// IdentityHeader is the first line of the plaintext of a sealed age
// identity (a custodian's key): the identity string follows on one line.
const IdentityHeader = "chancery-key/v1 age\n"

// WriteAgeIdentity seals an age identity string (AGE-SECRET-KEY-1… or the
// hybrid post-quantum AGE-SECRET-KEY-PQ-1…) under p and writes it to path
// with mode 0600, atomically, never over an existing file.
func WriteAgeIdentity(path, identity string, p Protector) error {
	if strings.ContainsAny(identity, "\r\n#") {
		return fmt.Errorf("write key file %s: want exactly one age identity on one line, without comments", path)
	}
	if ids, err := age.ParseIdentities(strings.NewReader(identity)); err != nil || len(ids) != 1 {
		// age's error quotes parts of the input: a secret must not reach logs.
		return fmt.Errorf("write key file %s: not an age identity (malformed X25519 or hybrid secret key)", path)
	}
	plain := []byte(IdentityHeader + identity + "\n")
	defer clear(plain)
	return writeSealed(path, plain, p)
}

// ReadAgeIdentity opens a sealed age identity written by WriteAgeIdentity.
func ReadAgeIdentity(path string, p Protector) (age.Identity, error) {
	plain, err := readSealed(path, p)
	defer clear(plain)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(plain, []byte(IdentityHeader))
	if !ok {
		return nil, fmt.Errorf("read key file %s: not a sealed age identity (want header %q)", path, strings.TrimSpace(IdentityHeader))
	}
	ids, err := age.ParseIdentities(bytes.NewReader(rest))
	if err != nil || len(ids) != 1 {
		return nil, fmt.Errorf("read key file %s: malformed age identity", path)
	}
	return ids[0], nil
}
