package charter

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

// TestVerifySignaturesRefusesInvalidPrevious: the version a charter amends
// is its authority (whose signatures count), so it must itself be a valid
// charter. A v2 correctly linked to and signed under an invalid v1 is
// refused, naming the previous version. (Found by mutation testing: with
// the check on prev removed, every other test passed, because VerifyChain
// validates each version before it serves as the next one's authority.)
func TestVerifySignaturesRefusesInvalidPrevious(t *testing.T) {
	f := newFixture(t)
	v1 := f.signed(t)
	v2 := amend(t, v1, func(c *Charter) { c.Guest.Name = "Republic of Demo" })
	bad := amend(t, v1, nil)
	bad.Version = 1
	bad.Previous = ""
	bad.Safeguards.Retention = "forever"
	if err := bad.Validate(); err == nil {
		t.Fatal("the broken previous version validates")
	}
	v2.Previous = bad.HashHex()
	f.sign(t, v2, bad, KindOfficial, "min-interior", "cio", "registrar")
	f.sign(t, v2, bad, KindHost, "host-north", "host-west")
	err := VerifySignatures(v2, bad)
	if err == nil || !strings.Contains(err.Error(), "previous version") {
		t.Fatalf("v2 under an invalid v1: %v, want a refusal naming the previous version", err)
	}
	// The same amendment under the valid v1 verifies.
	good := amend(t, v1, func(c *Charter) { c.Guest.Name = "Republic of Demo" })
	f.sign(t, good, v1, KindOfficial, "min-interior", "cio", "registrar")
	f.sign(t, good, v1, KindHost, "host-north", "host-west")
	if err := VerifySignatures(good, v1); err != nil {
		t.Fatalf("v2 under the valid v1: %v", err)
	}
}

// TestVerifySignaturesRefusesInvalidCharter: signatures over an invalid
// charter do not make it one. A version 1 with a malformed field, signed
// by the amend quorum and both hosts, is refused. (Found by mutation
// testing: with c.Validate removed, every other test still passed,
// because Parse validates before VerifySignatures ever sees a charter.)
func TestVerifySignaturesRefusesInvalidCharter(t *testing.T) {
	f := newFixture(t)
	c := f.charter(t)
	c.Safeguards.Retention = "forever"
	// Sign refuses an invalid charter, so sign by hand, as an attacker
	// holding the keys would.
	msg := c.CanonicalBytes()
	for kind, ids := range map[string][]string{KindOfficial: {"min-interior", "cio", "registrar"}, KindHost: {"host-north", "host-west"}} {
		keys := f.officials
		if kind == KindHost {
			keys = f.hosts
		}
		for _, id := range ids {
			c.Signatures = append(c.Signatures, Signature{Signer: id, Kind: kind, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(keys[id], msg))})
		}
	}
	if err := VerifySignatures(c, nil); err == nil || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("a signed invalid charter: %v, want a refusal naming the field", err)
	}
}
