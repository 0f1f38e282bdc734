package charter

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Authority: who may sign which version.
//
// Version 1 is valid when its own amend quorum and every host with sites in
// it have signed. Version n+1 is valid when the amend quorum of version n —
// officials, roles and keys as version n lists them — and every host with
// sites in version n+1 have signed it. Authority always flows from the
// version already trusted: a new version cannot enrol the officials that
// approve it. A host that already existed in version n signs with the key
// version n gives it, so that an amendment cannot replace a host's key and
// sign in its name; a host new in version n+1 signs with its key there.

// signaturePrefix opens every message a charter signature signs. Without
// it a charter signature would be an Ed25519 signature over bare JSON, which
// any other protocol that signs JSON with the same key could be made to
// produce; with it the bytes can only ever mean "this charter, as this
// kind of signer". The version in it is the signature format's: charters
// signed before it existed fail with a message saying so.
const signaturePrefix = "chancery/charter/v1 signature"

// SignedMessage is the exact byte string a charter signature by a signer of
// kind signs:
//
//	"chancery/charter/v1 signature" 0x00 ‖ kind ‖ 0x00 ‖ c.CanonicalBytes()
//
// Binding the kind keeps an official's signature from counting as a host's
// and back, even where one key were (wrongly) listed for both.
func SignedMessage(c *Charter, kind string) []byte {
	canon := c.CanonicalBytes()
	b := make([]byte, 0, len(signaturePrefix)+len(kind)+2+len(canon))
	b = append(b, signaturePrefix...)
	b = append(b, 0)
	b = append(b, kind...)
	b = append(b, 0)
	return append(b, canon...)
}

// Sign signs c as the given signer and adds the signature to c, replacing
// an earlier one by the same signer. prev is the version c amends (nil for
// version 1); it decides which key is expected. Sign refuses an invalid
// charter, a broken link to prev, a signer with no standing, and a key
// that is not the one the charter names.
func Sign(c, prev *Charter, kind, signerID string, key ed25519.PrivateKey) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("sign charter: %w", err)
	}
	if err := checkLink(c, prev); err != nil {
		return fmt.Errorf("sign charter: %w", err)
	}
	want, err := signerKey(c, prev, kind, signerID)
	if err != nil {
		return fmt.Errorf("sign charter as %s %s: %w", kind, signerID, err)
	}
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign charter as %s %s: private key is %d bytes, want %d", kind, signerID, len(key), ed25519.PrivateKeySize)
	}
	if !want.Equal(key.Public()) {
		return fmt.Errorf("sign charter as %s %s: the private key does not match the public key the charter gives %s", kind, signerID, signerID)
	}
	sig := Signature{Signer: signerID, Kind: kind, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, SignedMessage(c, kind)))}
	for i, s := range c.Signatures {
		if s.Kind == kind && s.Signer == signerID {
			c.Signatures[i] = sig
			return nil
		}
	}
	c.Signatures = append(c.Signatures, sig)
	return nil
}

// VerifySignatures checks that c is a valid charter, correctly chained to
// prev (nil for version 1), and signed as the authority rules above demand.
// Every signature present must verify and have standing: a stray or bad
// signature fails the charter rather than being ignored, because it means
// someone is confused or lying. The error joins every problem found.
func VerifySignatures(c, prev *Charter) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if prev != nil {
		if err := prev.Validate(); err != nil {
			return fmt.Errorf("previous version: %w", err)
		}
	}
	if err := checkLink(c, prev); err != nil {
		return err
	}
	authority := c
	if prev != nil {
		authority = prev
	}
	canon := c.CanonicalBytes()
	var errs []error
	type signer struct{ kind, id string }
	seen := map[signer]int{}
	var officials []Official
	hostsSigned := map[string]bool{}
	for i, s := range c.Signatures {
		path := fmt.Sprintf("signatures[%d]", i)
		if j, dup := seen[signer{s.Kind, s.Signer}]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate signature by %s %s (also signatures[%d])", path, s.Kind, s.Signer, j))
			continue
		}
		seen[signer{s.Kind, s.Signer}] = i
		pub, err := signerKey(c, prev, s.Kind, s.Signer)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", path, s.Kind, s.Signer, err))
			continue
		}
		sig, err := decodeCanonicalBase64(s.Sig, ed25519.SignatureSize)
		if err != nil || !ed25519.Verify(pub, SignedMessage(c, s.Kind), sig) {
			if err == nil && ed25519.Verify(pub, canon, sig) {
				errs = append(errs, fmt.Errorf("%s: signature by %s %s is over the bare charter JSON, a format no longer accepted: sign again with this version of chancery (charter sign)", path, s.Kind, s.Signer))
				continue
			}
			errs = append(errs, fmt.Errorf("%s: bad signature by %s %s", path, s.Kind, s.Signer))
			continue
		}
		switch s.Kind {
		case KindOfficial:
			o, _ := authority.Official(s.Signer)
			officials = append(officials, *o)
		case KindHost:
			hostsSigned[s.Signer] = true
		}
	}
	amend, _ := authority.Rule(ActionAmend)
	if err := amend.Satisfied(officials); err != nil {
		errs = append(errs, fmt.Errorf("amend quorum of version %d (%s): %w", authority.Version, amend, err))
	}
	for _, h := range c.Hosts {
		sites := c.SitesOf(h.ID)
		if len(sites) == 0 || hostsSigned[h.ID] {
			continue
		}
		ids := make([]string, len(sites))
		for i, s := range sites {
			ids[i] = s.ID
		}
		errs = append(errs, fmt.Errorf("host %s runs sites %s but has not signed", h.ID, strings.Join(ids, ", ")))
	}
	if len(errs) > 0 {
		return fmt.Errorf("charter %s v%d: %w", c.Guest.ID, c.Version, errors.Join(errs...))
	}
	return nil
}

// VerifyChain checks versions 1..n of one guest's charter, in order. The
// last element is then the charter in force.
func VerifyChain(chain []*Charter) error {
	if len(chain) == 0 {
		return errors.New("verify charter chain: no versions given")
	}
	var prev *Charter
	for i, c := range chain {
		if err := VerifySignatures(c, prev); err != nil {
			return fmt.Errorf("verify charter chain: element %d: %w", i, err)
		}
		prev = c
	}
	return nil
}

// checkLink checks that c follows prev: version 1 stands alone, version
// n+1 names version n by hash and keeps the guest.
func checkLink(c, prev *Charter) error {
	if c.Version == 1 {
		if prev != nil {
			return fmt.Errorf("version: is 1 but a previous version (v%d) was given", prev.Version)
		}
		return nil
	}
	if prev == nil {
		return fmt.Errorf("version: is %d, so version %d is needed to verify it", c.Version, c.Version-1)
	}
	if prev.Version+1 != c.Version {
		return fmt.Errorf("version: %d does not follow previous version %d", c.Version, prev.Version)
	}
	if prev.Guest.ID != c.Guest.ID {
		return fmt.Errorf("guest.id: is %q, previous version is for %q", c.Guest.ID, prev.Guest.ID)
	}
	if want := prev.HashHex(); c.Previous != want {
		return fmt.Errorf("previous: is %s, but version %d hashes to %s", c.Previous, prev.Version, want)
	}
	return nil
}

// signerKey returns the key a signer of c must sign with, or why the
// signer has no standing.
func signerKey(c, prev *Charter, kind, id string) (ed25519.PublicKey, error) {
	authority := c
	if prev != nil {
		authority = prev
	}
	switch kind {
	case KindOfficial:
		o, ok := authority.Official(id)
		if !ok {
			return nil, fmt.Errorf("not an official of version %d", authority.Version)
		}
		amend, _ := authority.Rule(ActionAmend)
		if !slices.ContainsFunc(amend.Of, o.HasRole) {
			return nil, fmt.Errorf("holds no role in the amend rule of version %d (roles %s, rule needs one of %s)",
				authority.Version, strings.Join(o.Roles, ","), strings.Join(amend.Of, ","))
		}
		return o.PublicKey()
	case KindHost:
		h, ok := c.Host(id)
		if !ok {
			return nil, fmt.Errorf("not a host of version %d", c.Version)
		}
		if prev != nil {
			if old, ok := prev.Host(id); ok {
				h = old
			}
		}
		return h.PublicKey()
	default:
		return nil, fmt.Errorf("unknown signer kind %q, want %q or %q", kind, KindOfficial, KindHost)
	}
}
