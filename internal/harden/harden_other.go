//go:build !unix

package harden

import "errors"

func process() Report {
	return Report{Errs: []error{errors.New("no process hardening on this platform")}}
}

func newSecret(n int) *Secret { return &Secret{b: make([]byte, max(n, 0))} }

func (s *Secret) release() {}
