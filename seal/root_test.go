package seal

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

func TestRootKeyFile(t *testing.T) {
	r := newRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "root.key")
	pass := []byte("correct horse battery staple")
	if err := WriteRootKeyFile(path, r, pass, 10); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %#o", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	sb, _ := r.s.MarshalBinary()
	if bytes.Contains(raw, sb) || bytes.Contains(raw, r.key[:]) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(sb))) {
		t.Fatal("root key file holds the root in clear")
	}
	got, err := ReadRootKeyFile(path, pass)
	if err != nil || got.key != r.key || !got.s.IsEqual(r.s) {
		t.Fatal("root key file roundtrip", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in dir: temp file left behind", len(ents))
	}
	for name, err := range map[string]error{
		"overwrite":       WriteRootKeyFile(path, r, pass, 10),
		"empty pass":      WriteRootKeyFile(filepath.Join(dir, "b"), r, nil, 10),
		"bad work factor": WriteRootKeyFile(filepath.Join(dir, "c"), r, pass, 31),
		// 23..30 were accepted once, and the reader (cap 22) never opened them.
		"unreadable work factor": WriteRootKeyFile(filepath.Join(dir, "e"), r, pass, 23),
		"below the floor":        WriteRootKeyFile(filepath.Join(dir, "f"), r, pass, 9),
		"weak passphrase":        WriteRootKeyFile(filepath.Join(dir, "g"), r, []byte("hunter2"), 10),
		"nil recipient":          WriteRootKeyFileTo(filepath.Join(dir, "d"), r, nil),
	} {
		if err == nil {
			t.Errorf("%s: written", name)
		}
	}
	if _, err := ReadRootKeyFile(path, []byte("wrong")); err == nil {
		t.Error("wrong passphrase accepted")
	}
	os.Chmod(path, 0o644)
	if _, err := ReadRootKeyFile(path, pass); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Errorf("world-readable root key file: %v", err)
	}
	// Identity variant, and a foreign plaintext is refused.
	id, _ := age.GenerateX25519Identity()
	p2 := filepath.Join(dir, "root2.key")
	if err := WriteRootKeyFileTo(p2, r, id.Recipient()); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadRootKeyFileWith(p2, id); err != nil || got.key != r.key {
		t.Fatal(err)
	}
	foreign, _ := ageSeal([]byte("chancery-key/v1 ed25519\n"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), id.Recipient())
	p3 := filepath.Join(dir, "foreign.key")
	os.WriteFile(p3, foreign, 0o600)
	if _, err := ReadRootKeyFileWith(p3, id); err == nil {
		t.Error("an ed25519 key file read as a root key")
	}
}

func TestRootKeyDerivation(t *testing.T) {
	a, b := newRoot(t), newRoot(t)
	if a.key == b.key || a.s.IsEqual(b.s) {
		t.Fatal("two roots equal")
	}
	sb, _ := a.s.MarshalBinary()
	if bytes.Equal(sb, a.key[:]) {
		t.Fatal("R is the scalar's bytes, not derived")
	}
	again, err := rootFromScalar(a.s)
	if err != nil || again.key != a.key {
		t.Fatal("R not a function of s")
	}
	if _, err := rootFromScalar(suite.NewScalar()); err == nil {
		t.Fatal("zero scalar accepted")
	}
}
