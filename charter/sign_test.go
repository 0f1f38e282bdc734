package charter

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func TestVerifySignaturesV1(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		setup func(c *Charter)
		want  []string // nil: valid
	}{
		{"quorum and hosts", func(c *Charter) {}, nil},
		{"deputy stands in for the minister", func(c *Charter) {
			c.Signatures = nil
			f.sign(t, c, nil, KindOfficial, "deputy", "cio", "registrar")
			f.sign(t, c, nil, KindHost, "host-north", "host-west")
		}, nil},
		{"host missing", func(c *Charter) { c.Signatures = c.Signatures[:4] }, []string{"host host-west runs sites embassy-west but has not signed"}},
		{"host without sites need not sign", func(c *Charter) {
			c.Sites = c.Sites[:2]
			c.Registries[0].Sites = c.Registries[0].Sites[:2]
			c.Signatures = nil
			f.sign(t, c, nil, KindOfficial, "min-interior", "cio", "registrar")
			f.sign(t, c, nil, KindHost, "host-north")
		}, nil},
		{"quorum short", func(c *Charter) { c.Signatures = c.Signatures[1:] }, []string{"amend quorum of version 1", "need 3 of", "have 2", "need at least 1 minister, have 0"}},
		{"bad signature", func(c *Charter) { c.Signatures[1].Sig = c.Signatures[0].Sig }, []string{"signatures[1]: bad signature by official cio"}},
		{"signed other bytes", func(c *Charter) { c.Guest.Name = "Changed after signing" }, []string{"signatures[0]: bad signature by official min-interior"}},
		{"non-member official", func(c *Charter) {
			c.Signatures = append(c.Signatures, Signature{Signer: "stranger", Kind: KindOfficial, Sig: c.Signatures[0].Sig})
		}, []string{"signatures[5]: official stranger: not an official of version 1"}},
		{"non-member host", func(c *Charter) {
			c.Signatures = append(c.Signatures, Signature{Signer: "host-south", Kind: KindHost, Sig: c.Signatures[0].Sig})
		}, []string{"signatures[5]: host host-south: not a host of version 1"}},
		{"official without amend role", func(c *Charter) {
			_, priv := genKey(t)
			c.Signatures = append(c.Signatures, Signature{Signer: "notary", Kind: KindOfficial,
				Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, SignedMessage(c, KindOfficial)))})
		}, []string{"signatures[5]: official notary: holds no role in the amend rule"}},
		{"duplicate signer", func(c *Charter) {
			c.Signatures = append(c.Signatures, c.Signatures[0])
		}, []string{"signatures[5]: duplicate signature by official min-interior (also signatures[0])"}},
		{"official signing as host", func(c *Charter) {
			c.Signatures = append(c.Signatures, Signature{Signer: "cio", Kind: KindHost, Sig: c.Signatures[1].Sig})
		}, []string{"signatures[5]: host cio: not a host"}},
		{"v1 with previous version given", nil, []string{"version: is 1 but a previous version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.signed(t)
			var prev *Charter
			if tt.setup == nil {
				prev = f.signed(t)
			} else {
				tt.setup(c)
			}
			err := VerifySignatures(c, prev)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifySignatures = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("VerifySignatures succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// amend returns version n+1 of prev with change applied, unsigned.
func amend(t *testing.T, prev *Charter, change func(c *Charter)) *Charter {
	t.Helper()
	b, err := prev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	c.Version = prev.Version + 1
	c.Previous = prev.HashHex()
	c.Signatures = nil
	if change != nil {
		change(c)
	}
	return c
}

func TestAmendmentChain(t *testing.T) {
	f := newFixture(t)
	v1 := f.signed(t)
	newPub, newPriv := genKey(t)

	tests := []struct {
		name  string
		build func(t *testing.T) []*Charter
		want  []string
	}{
		{"v1 alone", func(t *testing.T) []*Charter { return []*Charter{v1} }, nil},
		{"v1 v2 v3", func(t *testing.T) []*Charter {
			v2 := amend(t, v1, func(c *Charter) { c.Safeguards.Retention = "43800h" })
			f.sign(t, v2, v1, KindOfficial, "deputy", "cio", "registrar")
			f.sign(t, v2, v1, KindHost, "host-north", "host-west")
			v3 := amend(t, v2, func(c *Charter) { c.Guest.Name = "Republic of Demo" })
			f.sign(t, v3, v2, KindOfficial, "min-interior", "cio", "registrar")
			f.sign(t, v3, v2, KindHost, "host-north", "host-west")
			return []*Charter{v1, v2, v3}
		}, nil},
		{"new official cannot approve their own enrolment", func(t *testing.T) []*Charter {
			v2 := amend(t, v1, func(c *Charter) {
				c.Officials = append(c.Officials, Official{ID: "usurper", Name: "Usurper", Roles: []string{"minister"}, Key: newPub})
			})
			f.sign(t, v2, v1, KindOfficial, "cio", "registrar")
			f.sign(t, v2, v1, KindHost, "host-north", "host-west")
			v2.Signatures = append(v2.Signatures, Signature{Signer: "usurper", Kind: KindOfficial,
				Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(newPriv, SignedMessage(v2, KindOfficial)))})
			return []*Charter{v1, v2}
		}, []string{"official usurper: not an official of version 1", "need at least 1 minister"}},
		{"host key rotation is signed with the old key", func(t *testing.T) []*Charter {
			v2 := amend(t, v1, func(c *Charter) { c.Hosts[0].Key = newPub })
			f.sign(t, v2, v1, KindOfficial, "min-interior", "cio", "registrar")
			f.sign(t, v2, v1, KindHost, "host-north", "host-west")
			return []*Charter{v1, v2}
		}, nil},
		{"host key replaced and signed with the new key", func(t *testing.T) []*Charter {
			v2 := amend(t, v1, func(c *Charter) { c.Hosts[0].Key = newPub })
			f.sign(t, v2, v1, KindOfficial, "min-interior", "cio", "registrar")
			f.sign(t, v2, v1, KindHost, "host-west")
			v2.Signatures = append(v2.Signatures, Signature{Signer: "host-north", Kind: KindHost,
				Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(newPriv, SignedMessage(v2, KindHost)))})
			return []*Charter{v1, v2}
		}, []string{"bad signature by host host-north"}},
		{"wrong previous hash", func(t *testing.T) []*Charter {
			v2 := amend(t, v1, func(c *Charter) { c.Previous = strings.Repeat("ab", 32) })
			return []*Charter{v1, v2}
		}, []string{"previous: is abab", "but version 1 hashes to " + v1.HashHex()}},
		{"version gap", func(t *testing.T) []*Charter {
			v3 := amend(t, v1, func(c *Charter) { c.Version = 3 })
			return []*Charter{v1, v3}
		}, []string{"version: 3 does not follow previous version 1"}},
		{"chain must start at v1", func(t *testing.T) []*Charter {
			return []*Charter{amend(t, v1, nil)}
		}, []string{"version: is 2, so version 1 is needed"}},
		{"guest changes", func(t *testing.T) []*Charter {
			return []*Charter{v1, amend(t, v1, func(c *Charter) { c.Guest.ID = "other" })}
		}, []string{"guest.id"}},
		{"unsigned amendment", func(t *testing.T) []*Charter {
			return []*Charter{v1, amend(t, v1, nil)}
		}, []string{"element 1", "amend quorum of version 1", "host host-north runs sites"}},
		{"empty chain", func(t *testing.T) []*Charter { return nil }, []string{"no versions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyChain(tt.build(t))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifyChain = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("VerifyChain succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	f := newFixture(t)
	v1 := f.signed(t)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		c    func() *Charter
		prev *Charter
		kind string
		id   string
		key  ed25519.PrivateKey
		want string
	}{
		{"wrong key", func() *Charter { return f.charter(t) }, nil, KindOfficial, "cio", stranger, "does not match"},
		{"unknown official", func() *Charter { return f.charter(t) }, nil, KindOfficial, "nobody", stranger, "not an official"},
		{"no amend role", func() *Charter { return f.charter(t) }, nil, KindOfficial, "notary", f.officials["notary"], "holds no role"},
		{"unknown kind", func() *Charter { return f.charter(t) }, nil, "citizen", "cio", f.officials["cio"], "unknown signer kind"},
		{"invalid charter", func() *Charter { c := f.charter(t); c.Version = 0; return c }, nil, KindOfficial, "cio", f.officials["cio"], "version"},
		{"missing previous", func() *Charter { return amend(t, v1, nil) }, nil, KindOfficial, "cio", f.officials["cio"], "version 1 is needed"},
		{"short key", func() *Charter { return f.charter(t) }, nil, KindOfficial, "cio", f.officials["cio"][:10], "private key is 10 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c()
			err := Sign(c, tt.prev, tt.kind, tt.id, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sign error = %v, want %q", err, tt.want)
			}
			if len(c.Signatures) != 0 {
				t.Error("Sign added a signature despite failing")
			}
		})
	}
}

func TestSignReplaces(t *testing.T) {
	f := newFixture(t)
	c := f.signed(t)
	n := len(c.Signatures)
	c.Guest.Name = "Renamed"
	f.sign(t, c, nil, KindOfficial, "min-interior", "cio", "registrar")
	f.sign(t, c, nil, KindHost, "host-north", "host-west")
	if len(c.Signatures) != n {
		t.Fatalf("%d signatures after re-signing, want %d", len(c.Signatures), n)
	}
	if err := VerifySignatures(c, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSummary(t *testing.T) {
	c := newFixture(t).signed(t)
	s := Summary(c)
	for _, w := range []string{
		"Charter of Demo Republic (demo-republic), version 1",
		c.HashHex(),
		"host Northland (host-north):\n    embassy embassy-north",
		"Deputy Minister (deputy): minister, cio",
		"any 2 of 3 unseal a site",
		"population [secret] at home, embassy-north, embassy-west; acknowledged when 1 non-home site(s) hold it; indexed by national_id, last_name",
		"amend        3 of minister, cio, registrar, including at least 1 minister",
		"720h notice",
		"official min-interior",
	} {
		if !strings.Contains(s, w) {
			t.Errorf("summary lacks %q:\n%s", w, s)
		}
	}
}

// TestSignaturesAreDomainSeparated: a charter signature signs the prefixed
// message of its kind, not the bare JSON, so a signature over the bare
// JSON (what any JSON-signing protocol with the same key would produce),
// or one made as the other kind, does not verify; old charters signed over
// bare JSON are refused with a message that says so.
func TestSignaturesAreDomainSeparated(t *testing.T) {
	f := newFixture(t)
	c := f.signed(t)
	msg := SignedMessage(c, KindOfficial)
	if !strings.HasPrefix(string(msg), "chancery/charter/v1 signature\x00official\x00"+string(c.CanonicalBytes())) {
		t.Fatalf("signed message starts %q", msg[:40])
	}
	for name, m := range map[string][]byte{
		"bare JSON":    c.CanonicalBytes(),
		"as host kind": SignedMessage(c, KindHost),
	} {
		d := f.signed(t)
		d.Signatures[0].Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(f.officials["min-interior"], m))
		err := VerifySignatures(d, nil)
		if err == nil {
			t.Fatalf("%s: verified", name)
		}
		if name == "bare JSON" && !strings.Contains(err.Error(), "over the bare charter JSON, a format no longer accepted") {
			t.Errorf("bare JSON: unclear error %v", err)
		}
	}
}

func TestBareSignaturesRefused(t *testing.T) {
	c, err := ReadFile("testdata/example-v1-bare-signatures.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = VerifySignatures(c, nil)
	if err == nil || !strings.Contains(err.Error(), "signatures[0]: signature by official min-interior is over the bare charter JSON") {
		t.Fatalf("old-format charter: %v", err)
	}
}

// TestKeyReusedAcrossRolesRefused: one Ed25519 key as a site's checkpoint
// key and an official's, a host's, or another site's TLS key is refused,
// naming both uses.
func TestKeyReusedAcrossRolesRefused(t *testing.T) {
	f := newFixture(t)
	base := f.charter(t)
	ck := base64.StdEncoding.EncodeToString(checkpointRaw(base.Sites[0].CheckpointKey))
	tests := map[string]struct {
		mutate func(c *Charter)
		want   string
	}{
		"checkpoint as official": {func(c *Charter) { c.Officials[3].Key = ck },
			"sites[0].checkpoint_key: the checkpoint key of site " + base.Sites[0].ID + " is also the key of official notary (officials[3].key)"},
		"checkpoint as host": {func(c *Charter) { c.Hosts[1].Key = ck },
			"sites[0].checkpoint_key: the checkpoint key of site " + base.Sites[0].ID + " is also the key of host host-west (hosts[1].key)"},
		"host as official": {func(c *Charter) { c.Officials[0].Key = c.Hosts[0].Key },
			"officials[0].key: the key of official min-interior is also the key of host host-north (hosts[0].key)"},
		"official as TLS": {func(c *Charter) { c.Sites[1].TLSKey = c.Officials[1].Key },
			"sites[1].tls_key: the TLS key of site " + base.Sites[1].ID + " is also the key of official cio (officials[1].key)"},
	}
	for name, tt := range tests {
		c := f.charter(t)
		tt.mutate(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v\nwant %q", name, err, tt.want)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
}
