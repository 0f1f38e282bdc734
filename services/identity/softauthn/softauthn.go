// Package softauthn is a WebAuthn authenticator in software: a P-256 key
// (COSE ES256), attestation "none", a signature counter, and the
// browser's part (clientDataJSON for an origin). It answers the options of
// navigator.credentials.create and .get as a browser with a platform
// authenticator would, so that the demo and the tests run passkey
// ceremonies without a browser. Its RP id, origin and counter can be set
// wrong on purpose. It is not an authenticator to protect anything with:
// the key is in memory.
package softauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator is one credential of a software authenticator.
type Authenticator struct {
	RPID   string // the relying party id whose hash starts authenticatorData
	Origin string // the origin the "browser" puts in clientDataJSON
	CredID []byte
	Key    *ecdsa.PrivateKey
	// Count is the signature counter put in the next authenticatorData.
	Count uint32
	// UserHandle is the user id the assertion names (the person id).
	UserHandle []byte
}

// New makes a credential with a fresh P-256 key and a random 16-byte id.
func New(rpID, origin string, userHandle []byte) (*Authenticator, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &Authenticator{RPID: rpID, Origin: origin, CredID: id, Key: k, UserHandle: userHandle}, nil
}

// Flags of authenticatorData.
const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagAT = 0x40 // attested credential data included
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Challenge reads publicKey.challenge from a ceremony's options.
func Challenge(options json.RawMessage) (string, error) {
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.Challenge == "" {
		return "", fmt.Errorf("WebAuthn options without a challenge (%v)", err)
	}
	return o.PublicKey.Challenge, nil
}

// clientData is the browser's clientDataJSON.
func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

// authData is authenticatorData: SHA-256 of the RP id, flags, the counter,
// and the attested credential if any.
func (a *Authenticator) authData(flags byte, attested []byte) []byte {
	h := sha256.Sum256([]byte(a.RPID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, a.Count)
	return append(out, attested...)
}

// Create answers navigator.credentials.create: the credential JSON a
// browser posts to finish a registration.
func (a *Authenticator) Create(options json.RawMessage) ([]byte, error) {
	ch, err := Challenge(options)
	if err != nil {
		return nil, err
	}
	x, y := a.Key.PublicKey.X.FillBytes(make([]byte, 32)), a.Key.PublicKey.Y.FillBytes(make([]byte, 32))
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		return nil, err
	}
	att := make([]byte, 16) // AAGUID: zero
	att = binary.BigEndian.AppendUint16(att, uint16(len(a.CredID)))
	att = append(append(att, a.CredID...), cose...)
	ao, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(flagUP|flagUV|flagAT, att)})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": b64(a.CredID), "rawId": b64(a.CredID), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64(a.clientData("webauthn.create", ch)), "attestationObject": b64(ao)}})
}

// Get answers navigator.credentials.get with the current Count: the
// assertion JSON a browser posts to finish a sign-in.
func (a *Authenticator) Get(options json.RawMessage) ([]byte, error) {
	ch, err := Challenge(options)
	if err != nil {
		return nil, err
	}
	cd := a.clientData("webauthn.get", ch)
	ad := a.authData(flagUP|flagUV, nil)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.Key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": b64(a.CredID), "rawId": b64(a.CredID), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64(cd), "authenticatorData": b64(ad), "signature": b64(sig), "userHandle": b64(a.UserHandle)}})
}
