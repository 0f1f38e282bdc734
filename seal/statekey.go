package seal

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"fmt"
	"regexp"
)

// State keys are the guest's own signing keys for what it issues in the
// state's name rather than a site's: certified extracts, OpenID Connect ID
// tokens. They are derived from the root key, so every site that holds R
// (the home, or an embassy after activation) signs with the same key, and a
// relying party or border guard configured once keeps verifying after a
// failover. Their public halves are published in the charter
// (charter.StateKey), so verification needs no site.
//
// The private key lives in ordinary Go memory once derived (crypto/ecdsa
// and crypto/ed25519 keep their own copies), not in the locked PRK buffer:
// a site that may sign in the state's name already holds R.

const labelStateKey = "state-key"

// Algorithms of state keys, named as JOSE and COSE name them.
const (
	StateAlgEdDSA = "EdDSA" // Ed25519
	StateAlgES256 = "ES256" // ECDSA P-256 with SHA-256
)

var statePurpose = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// StateSigner derives the state key of purpose (for example "extract" or
// "oidc"), algorithm alg and generation gen. The same root, guest, purpose,
// algorithm and generation always give the same key.
func (k *Keyring) StateSigner(purpose, alg string, gen uint32) (crypto.Signer, error) {
	if !statePurpose.MatchString(purpose) {
		return nil, fmt.Errorf("seal: state key purpose %q: want a lowercase name of at most 32 characters", purpose)
	}
	var seed [keySize]byte
	defer clear(seed[:])
	switch alg {
	case StateAlgEdDSA:
		if err := k.derive(&seed, labelStateKey, purpose+"/"+alg, gen); err != nil {
			return nil, err
		}
		return ed25519.NewKeyFromSeed(seed[:]), nil
	case StateAlgES256:
		// A 32-byte string is a valid P-256 scalar unless it is zero or at
		// least the group order (probability about 2^-32); derive again
		// with a counter in the scope rather than reduce, so the key stays
		// uniform.
		for try := 0; try < 8; try++ {
			if err := k.derive(&seed, labelStateKey, fmt.Sprintf("%s/%s/%d", purpose, alg, try), gen); err != nil {
				return nil, err
			}
			if priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed[:]); err == nil {
				return priv, nil
			}
		}
		return nil, fmt.Errorf("seal: state key %s/%s: no valid P-256 scalar in 8 derivations", purpose, alg)
	default:
		return nil, fmt.Errorf("seal: state key %s: algorithm %q: want %s or %s", purpose, alg, StateAlgEdDSA, StateAlgES256)
	}
}
