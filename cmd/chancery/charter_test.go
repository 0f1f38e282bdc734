package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
)

// setupCharter writes an unsigned copy of the example charter to a temp dir
// with fresh keys for the signers, created through `charter keygen`, and
// returns the charter path and the key file of each signer.
func setupCharter(t *testing.T) (dir, path string, keys map[string]string) {
	t.Helper()
	dir = t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("test passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(keyfile.EnvPassphrase, "")
	c, err := charter.ReadFile(filepath.Join("..", "..", "charter", "testdata", "example-v1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.Signatures = nil
	keys = map[string]string{}
	for _, id := range []string{"min-interior", "cio", "registrar", "host-north", "host-west"} {
		kf := filepath.Join(dir, id+".key")
		var out bytes.Buffer
		if err := runCharterKeygen(&out, charterKeygenOptions{Out: kf, PassphraseFile: pw, WorkFactor: 10}); err != nil {
			t.Fatal(err)
		}
		pub := strings.TrimSpace(out.String())
		if o, ok := c.Official(id); ok {
			o.Key = pub
		} else if h, ok := c.Host(id); ok {
			h.Key = pub
		}
		keys[id] = kf
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "charter-v1.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, path, keys
}

func signAll(t *testing.T, dir, path, prev string, keys map[string]string, officials ...string) {
	t.Helper()
	sign := func(id, kind string) {
		var out bytes.Buffer
		err := runCharterSign(&out, charterSignOptions{File: path, As: id, Kind: kind, KeyFile: keys[id],
			Previous: prev, PassphraseFile: filepath.Join(dir, "pw")})
		if err != nil {
			t.Fatalf("sign as %s: %v", id, err)
		}
	}
	for _, id := range officials {
		sign(id, charter.KindOfficial)
	}
	sign("host-north", charter.KindHost)
	sign("host-west", charter.KindHost)
}

func TestCharterCommands(t *testing.T) {
	dir, v1, keys := setupCharter(t)

	var out bytes.Buffer
	if err := runCharterVerify(&out, []string{v1}); err == nil {
		t.Fatal("unsigned charter verified")
	}
	signAll(t, dir, v1, "", keys, "min-interior", "cio", "registrar")
	out.Reset()
	if err := runCharterVerify(&out, []string{v1}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "charter demo-republic v1 valid: hash ") ||
		!strings.Contains(out.String(), "signed by min-interior (official), cio (official), registrar (official), host-north (host), host-west (host)") {
		t.Errorf("verify output: %q", out.String())
	}
	// The fixture has two classical custodians and one hybrid.
	if !strings.Contains(out.String(), "warning: 2 of 3 custodians have a classical X25519 recipient (age1…), not a hybrid post-quantum one (age1pq1…): cust-1, cust-2;") {
		t.Errorf("verify does not warn of the classical custodians: %q", out.String())
	}
	if fi, _ := os.Stat(v1); fi.Mode().Perm() != 0o644 {
		t.Errorf("sign changed the file mode to %#o", fi.Mode().Perm())
	}

	// Amend: version 2 with the hash of version 1, signed under v1's rules.
	out.Reset()
	if err := runCharterHash(&out, v1); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	c1, _ := charter.ReadFile(v1)
	if hash != c1.HashHex() {
		t.Fatalf("hash printed %s, want %s", hash, c1.HashHex())
	}
	c1.Version, c1.Previous, c1.Signatures = 2, hash, nil
	c1.Safeguards.SuspendNotice = "1440h"
	data, _ := c1.Marshal()
	v2 := filepath.Join(dir, "charter-v2.yaml")
	if err := os.WriteFile(v2, data, 0o644); err != nil {
		t.Fatal(err)
	}
	signAll(t, dir, v2, v1, keys, "min-interior", "cio", "registrar")
	out.Reset()
	if err := runCharterVerify(&out, []string{v1, v2}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "charter demo-republic v2 valid") {
		t.Errorf("verify output: %q", out.String())
	}
	if err := runCharterVerify(&out, []string{v2}); err == nil || !strings.Contains(err.Error(), "version 1 is needed") {
		t.Errorf("lone v2 verify error = %v", err)
	}
	if err := runCharterVerify(&out, []string{v2, v1}); err == nil {
		t.Error("chain out of order verified")
	}

	out.Reset()
	if err := runCharterShow(&out, v2); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"version 2", "previous  " + hash, "1440h notice"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("show output lacks %q", w)
		}
	}
}

func TestCharterSignErrors(t *testing.T) {
	dir, v1, keys := setupCharter(t)
	pw := filepath.Join(dir, "pw")
	bad := filepath.Join(dir, "bad-pw")
	os.WriteFile(bad, []byte("wrong"), 0o600)
	tests := []struct {
		name string
		o    charterSignOptions
		want string
	}{
		{"wrong passphrase", charterSignOptions{As: "cio", Kind: "official", KeyFile: keys["cio"], PassphraseFile: bad}, "decrypt"},
		{"no passphrase", charterSignOptions{As: "cio", Kind: "official", KeyFile: keys["cio"]}, "no passphrase"},
		{"someone else's key", charterSignOptions{As: "cio", Kind: "official", KeyFile: keys["registrar"], PassphraseFile: pw}, "does not match"},
		{"unknown signer", charterSignOptions{As: "nobody", Kind: "official", KeyFile: keys["cio"], PassphraseFile: pw}, "not an official"},
		{"host as official", charterSignOptions{As: "host-north", Kind: "official", KeyFile: keys["host-north"], PassphraseFile: pw}, "not an official"},
		{"previous given for v1", charterSignOptions{As: "cio", Kind: "official", KeyFile: keys["cio"], PassphraseFile: pw, Previous: v1}, "previous version"},
	}
	before, _ := os.ReadFile(v1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.File = v1
			var out bytes.Buffer
			err := runCharterSign(&out, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			if after, _ := os.ReadFile(v1); !bytes.Equal(before, after) {
				t.Error("a failed sign modified the charter file")
			}
		})
	}
}

func TestCharterCommandWiring(t *testing.T) {
	cmd := newCharterCmd()
	var names []string
	for _, c := range cmd.Commands() {
		names = append(names, c.Name())
		if c.Short == "" || c.Long == "" {
			t.Errorf("%s lacks help text", c.Name())
		}
	}
	for _, want := range []string{"show", "hash", "verify", "sign", "keygen"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("charter has no %s subcommand", want)
		}
	}
	example := filepath.Join("..", "..", "charter", "testdata", "example-v1.yaml")
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"verify", example, filepath.Join("..", "..", "charter", "testdata", "example-v2.yaml")})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "v2 valid") {
		t.Errorf("verify via cobra: %q", out.String())
	}
}
