package continuity

import (
	"reflect"
	"slices"
	"time"

	"github.com/chancery-gov/chancery/seal"
)

// Test hooks: the unseal tests keep references to the secrets a session
// holds, so that they can check those very bytes are zero afterwards.

// HeldShares returns the shares the session holds (the same pointers).
func (s *UnsealSession) HeldShares() []*seal.Share {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.shares)
}

// IdentityScalar returns the one-time hybrid identity's seed: the slice
// inside hpke's private key itself, not a copy.
func (s *UnsealSession) IdentityScalar() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.identity == nil {
		return nil
	}
	return reflect.ValueOf(s.identity).Elem().FieldByName("k").Elem().Elem().FieldByName("seed").Bytes()
}

// IdentityWiped reports whether Close zeroed the identity's scalar.
func (s *UnsealSession) IdentityWiped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identityWiped
}

// SetClock replaces the session's clock.
func (s *UnsealSession) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}
