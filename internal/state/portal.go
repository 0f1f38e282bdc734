package state

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/chancery-gov/chancery/seal"
)

// PortalKeyPurpose is the state key the citizen portal authenticates to
// the state's OpenID Connect provider with (ES256, generation 0). It is
// derived from the root, so every active site authenticates as the same
// client; founding registers its public half (PortalJWKS) in the
// charter, and the site's portal signs with it (site/portal.go). It lives
// here, below both, so that the two derive one key.
const PortalKeyPurpose = "portal"

// PortalKey is the portal's private_key_jwt key, derived from the root in
// kr, and its key id (the JWK thumbprint, RFC 7638).
func PortalKey(kr *seal.Keyring) (*ecdsa.PrivateKey, string, error) {
	s, err := kr.StateSigner(PortalKeyPurpose, seal.StateAlgES256, 0)
	if err != nil {
		return nil, "", fmt.Errorf("portal client key: %w", err)
	}
	k, ok := s.(*ecdsa.PrivateKey)
	if !ok {
		return nil, "", fmt.Errorf("portal client key: a %T", s)
	}
	tp, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", fmt.Errorf("portal client key: thumbprint: %w", err)
	}
	return k, base64.RawURLEncoding.EncodeToString(tp), nil
}

// PortalJWKS is the public JSON Web Key Set of the portal's client key,
// derived from the root in kr: what the charter registers for the portal
// client.
func PortalJWKS(kr *seal.Keyring) (string, error) {
	k, kid, err := PortalKey(kr)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	return string(b), err
}
