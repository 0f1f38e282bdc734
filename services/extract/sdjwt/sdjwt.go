// Package sdjwt issues and verifies Selective Disclosure JWTs (RFC 9901)
// signed with Ed25519 (JWS alg "EdDSA", RFC 8037), for the SD-JWT VCs of
// draft-ietf-oauth-sd-jwt-vc-14 (typ "dc+sd-jwt"). It covers what the
// state's extracts need: selectively disclosable top-level claims, the
// issuer-signed JWT, disclosures, and presentations without key binding.
// Nested and array-element disclosures, decoy digests and key-binding JWTs
// are not implemented; a token that uses them is refused, not
// misread. It does no I/O.
package sdjwt

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Typ is the JWT typ of an SD-JWT VC (draft-ietf-oauth-sd-jwt-vc-14).
const Typ = "dc+sd-jwt"

// maxToken bounds what Verify reads.
const maxToken = 64 << 10

var b64 = base64.RawURLEncoding.Strict()

// Header is the JOSE header of the issuer-signed JWT.
type Header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid,omitempty"`
}

// Issue signs claims (always disclosed) and sd (each selectively
// disclosable, by top-level name) as an SD-JWT: the JWT, then each
// disclosure, each followed by "~". Disclosures are in the order of sd's
// sorted names; their digests are sorted in "_sd" so that the order
// reveals nothing.
func Issue(signer crypto.Signer, kid string, claims, sd map[string]any) (string, error) {
	if _, ok := signer.Public().(ed25519.PublicKey); !ok {
		return "", errors.New("sd-jwt: the signer must be Ed25519 (alg EdDSA)")
	}
	payload := make(map[string]any, len(claims)+2)
	for k, v := range claims {
		if k == "_sd" || k == "_sd_alg" || k == "..." {
			return "", fmt.Errorf("sd-jwt: claim name %q is reserved", k)
		}
		payload[k] = v
	}
	names := make([]string, 0, len(sd))
	for k := range sd {
		if _, dup := payload[k]; dup || k == "_sd" || k == "_sd_alg" || k == "..." {
			return "", fmt.Errorf("sd-jwt: selectively disclosable claim %q is reserved or also always disclosed", k)
		}
		names = append(names, k)
	}
	slices.Sort(names)
	var discs, digests []string
	for _, k := range names {
		var salt [16]byte
		if _, err := rand.Read(salt[:]); err != nil {
			return "", err
		}
		raw, err := json.Marshal([]any{b64.EncodeToString(salt[:]), k, sd[k]})
		if err != nil {
			return "", fmt.Errorf("sd-jwt: disclosure of %q: %w", k, err)
		}
		d := b64.EncodeToString(raw)
		discs = append(discs, d)
		digests = append(digests, Digest(d))
	}
	slices.Sort(digests)
	if len(digests) > 0 {
		payload["_sd"] = digests
		payload["_sd_alg"] = "sha-256"
	}
	hb, err := json.Marshal(Header{Alg: "EdDSA", Typ: Typ, Kid: kid})
	if err != nil {
		return "", err
	}
	pb, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("sd-jwt: claims: %w", err)
	}
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(pb)
	sig, err := signer.Sign(rand.Reader, []byte(input), crypto.Hash(0))
	if err != nil {
		return "", fmt.Errorf("sd-jwt: sign: %w", err)
	}
	var sb strings.Builder
	sb.WriteString(input + "." + b64.EncodeToString(sig) + "~")
	for _, d := range discs {
		sb.WriteString(d + "~")
	}
	return sb.String(), nil
}

// Digest is the SHA-256 digest of a disclosure as "_sd" lists it: the
// base64url of the hash of the disclosure's ASCII (RFC 9901 section 4.2.3).
func Digest(disclosure string) string {
	h := sha256.Sum256([]byte(disclosure))
	return b64.EncodeToString(h[:])
}

// Present keeps the disclosures whose claim names keep accepts: what a
// holder sends a verifier (RFC 9901 section 5, without key binding).
func Present(token string, keep func(name string) bool) (string, error) {
	parts := strings.Split(token, "~")
	if len(parts) < 2 || parts[len(parts)-1] != "" {
		return "", errors.New("sd-jwt: not an SD-JWT without key binding (must end in ~)")
	}
	out := parts[0] + "~"
	for _, d := range parts[1 : len(parts)-1] {
		_, name, _, err := decodeDisclosure(d)
		if err != nil {
			return "", err
		}
		if keep(name) {
			out += d + "~"
		}
	}
	return out, nil
}

func decodeDisclosure(d string) (salt, name string, value any, err error) {
	raw, err := b64.DecodeString(d)
	if err != nil {
		return "", "", nil, fmt.Errorf("sd-jwt: disclosure is not base64url: %w", err)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil || len(arr) != 3 {
		return "", "", nil, errors.New("sd-jwt: disclosure is not a JSON array of salt, name and value")
	}
	if json.Unmarshal(arr[0], &salt) != nil || json.Unmarshal(arr[1], &name) != nil || json.Unmarshal(arr[2], &value) != nil {
		return "", "", nil, errors.New("sd-jwt: disclosure's salt or name is not a string, or its value not JSON")
	}
	if len(salt) < 16 {
		return "", "", nil, fmt.Errorf("sd-jwt: disclosure of %q: salt of %d characters, want at least 16", name, len(salt))
	}
	if name == "_sd" || name == "..." || name == "_sd_alg" {
		return "", "", nil, fmt.Errorf("sd-jwt: disclosure of reserved name %q", name)
	}
	return salt, name, value, nil
}

// Verified is what Verify returns.
type Verified struct {
	Header Header
	// Claims are the always-disclosed claims with the disclosed ones
	// merged in ("_sd" and "_sd_alg" removed).
	Claims map[string]any
	// Disclosed names the claims that came from disclosures, sorted.
	Disclosed []string
}

// Verify checks an SD-JWT (or a presentation of it) signed with pub: the
// header (alg EdDSA, typ), the signature, and each disclosure's digest,
// which must be listed in "_sd" and appear once. It refuses key-binding
// JWTs, which this package does not implement.
func Verify(token string, pub ed25519.PublicKey) (*Verified, error) {
	if len(token) > maxToken {
		return nil, fmt.Errorf("sd-jwt: %d bytes, at most %d", len(token), maxToken)
	}
	parts := strings.Split(token, "~")
	if len(parts) < 2 {
		return nil, errors.New("sd-jwt: no '~' after the JWT")
	}
	if parts[len(parts)-1] != "" {
		return nil, errors.New("sd-jwt: a key-binding JWT follows the disclosures; not supported")
	}
	jwt := strings.Split(parts[0], ".")
	if len(jwt) != 3 {
		return nil, errors.New("sd-jwt: the issuer-signed JWT is not three dot-separated parts")
	}
	hb, err1 := b64.DecodeString(jwt[0])
	pb, err2 := b64.DecodeString(jwt[1])
	sig, err3 := b64.DecodeString(jwt[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, errors.New("sd-jwt: a JWT part is not unpadded base64url")
	}
	v := &Verified{}
	if err := strictJSON(hb, &v.Header); err != nil {
		return nil, fmt.Errorf("sd-jwt: header: %w", err)
	}
	if v.Header.Alg != "EdDSA" || v.Header.Typ != Typ {
		return nil, fmt.Errorf("sd-jwt: header alg %q typ %q, want EdDSA and %s", v.Header.Alg, v.Header.Typ, Typ)
	}
	if !ed25519.Verify(pub, []byte(jwt[0]+"."+jwt[1]), sig) {
		return nil, errors.New("sd-jwt: signature does not verify")
	}
	if err := strictJSON(pb, &v.Claims); err != nil {
		return nil, fmt.Errorf("sd-jwt: claims: %w", err)
	}
	listed := map[string]bool{}
	if sdv, ok := v.Claims["_sd"]; ok {
		arr, ok := sdv.([]any)
		if !ok {
			return nil, errors.New("sd-jwt: _sd is not an array")
		}
		for _, d := range arr {
			s, ok := d.(string)
			if !ok || listed[s] {
				return nil, errors.New("sd-jwt: _sd holds a non-string or a repeated digest")
			}
			listed[s] = true
		}
		if v.Claims["_sd_alg"] != "sha-256" {
			return nil, fmt.Errorf("sd-jwt: _sd_alg %v, want sha-256", v.Claims["_sd_alg"])
		}
	} else if _, ok := v.Claims["_sd_alg"]; ok {
		return nil, errors.New("sd-jwt: _sd_alg without _sd")
	}
	delete(v.Claims, "_sd")
	delete(v.Claims, "_sd_alg")
	used := map[string]bool{}
	for _, d := range parts[1 : len(parts)-1] {
		dg := Digest(d)
		if !listed[dg] {
			return nil, errors.New("sd-jwt: a disclosure whose digest the JWT does not list")
		}
		if used[dg] {
			return nil, errors.New("sd-jwt: a disclosure given twice")
		}
		used[dg] = true
		_, name, value, err := decodeDisclosure(d)
		if err != nil {
			return nil, err
		}
		if _, dup := v.Claims[name]; dup {
			return nil, fmt.Errorf("sd-jwt: disclosed claim %q is already in the JWT", name)
		}
		v.Claims[name] = value
		v.Disclosed = append(v.Disclosed, name)
	}
	slices.Sort(v.Disclosed)
	return v, nil
}

// strictJSON decodes one JSON object, refusing duplicate keys (RFC 9901
// asks verifiers to, and encoding/json would keep the last silently).
func strictJSON(b []byte, v any) error {
	if err := checkNoDuplicates(b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func checkNoDuplicates(b []byte) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	var walk func() error
	walk = func() error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				ks, _ := k.(string)
				if seen[ks] {
					return fmt.Errorf("duplicate key %q", ks)
				}
				seen[ks] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(); err != nil {
		return err
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("data after the JSON value")
	}
	return nil
}
