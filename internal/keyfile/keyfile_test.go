package keyfile

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// testWorkFactor keeps scrypt cheap in tests; production uses age's default.
const testWorkFactor = 10

// testPass passes CheckPassphrase.
const testPass = "keyfile test passphrase"

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pass(s string) Protector {
	return Protector{Passphrase: []byte(s), WorkFactor: testWorkFactor}
}

func TestRoundtrip(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		write Protector
		read  Protector
	}{
		{"passphrase", pass("correct horse"), pass("correct horse")},
		{"x25519 identity", Protector{Recipient: x.Recipient()}, Protector{Identity: x}},
		{"hybrid identity", Protector{Recipient: pq.Recipient()}, Protector{Identity: pq}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.age")
			key := newKey(t)
			if err := WriteEd25519(path, key, tt.write); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode = %#o, want 0600", fi.Mode().Perm())
			}
			got, err := ReadEd25519(path, tt.read)
			if err != nil {
				t.Fatal(err)
			}
			if !key.Equal(got) {
				t.Error("read key differs from written key")
			}
			// No stray temp files may be left next to the key.
			ents, _ := os.ReadDir(filepath.Dir(path))
			if len(ents) != 1 {
				t.Errorf("directory holds %d entries, want 1", len(ents))
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(t *testing.T, path string) // applied after a passphrase write
		read   Protector
		want   string
	}{
		{"wrong passphrase", nil, pass("wrong"), "decrypt"},
		{"wrong identity", nil, Protector{Identity: other}, "decrypt"},
		{"no passphrase", nil, Protector{}, "no passphrase"},
		{"group readable", func(t *testing.T, p string) { chmod(t, p, 0o640) }, pass(testPass), "too open"},
		{"world readable", func(t *testing.T, p string) { chmod(t, p, 0o604) }, pass(testPass), "too open"},
		{"tampered payload", func(t *testing.T, p string) { flipByte(t, p, -5) }, pass(testPass), "decrypt"},
		{"tampered header", func(t *testing.T, p string) { flipByte(t, p, 40) }, pass(testPass), "decrypt"},
		{"truncated", func(t *testing.T, p string) { truncate(t, p, 20) }, pass(testPass), "decrypt"},
		{"missing", func(t *testing.T, p string) { os.Remove(p) }, pass(testPass), "no such file"},
		{"directory", func(t *testing.T, p string) { os.Remove(p); os.Mkdir(p, 0o700) }, pass(testPass), "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.age")
			if err := WriteEd25519(path, newKey(t), pass(testPass)); err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tt.mutate(t, path)
			}
			_, err := ReadEd25519(path, tt.read)
			if err == nil {
				t.Fatal("ReadEd25519 succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q should contain %q and the path", err, tt.want)
			}
		})
	}
}

// TestRejectsForeignPlaintext checks that a correctly encrypted file whose
// contents are not our format is refused rather than guessed at.
func TestRejectsForeignPlaintext(t *testing.T) {
	seed := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct{ name, plain string }{
		{"empty", ""},
		{"raw seed", seed + "\n"},
		{"other version", "chancery-key/v2 ed25519\n" + seed + "\n"},
		{"short seed", Header + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"},
		{"no final newline", Header + seed},
		{"trailing data", Header + seed + "\nextra\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.age")
			var buf bytes.Buffer
			r, _ := age.NewScryptRecipient("pw")
			r.SetWorkFactor(testWorkFactor)
			w, err := age.Encrypt(&buf, r)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(tt.plain))
			w.Close()
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadEd25519(path, pass(testPass)); err == nil {
				t.Fatal("ReadEd25519 accepted foreign plaintext")
			}
		})
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		key  ed25519.PrivateKey
		p    Protector
		want string
	}{
		{"existing file", existing, newKey(t), pass(testPass), "exists"},
		{"no protection", filepath.Join(dir, "a"), newKey(t), Protector{}, "unencrypted"},
		{"bad work factor", filepath.Join(dir, "b"), newKey(t), Protector{Passphrase: []byte(testPass), WorkFactor: 23}, "work factor"},
		{"short key", filepath.Join(dir, "c"), ed25519.PrivateKey(make([]byte, 10)), pass(testPass), "private key is 10 bytes"},
		{"missing dir", filepath.Join(dir, "nope", "k"), newKey(t), pass(testPass), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteEd25519(tt.path, tt.key, tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteEd25519 error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Error("existing file was modified")
	}
	if errors.Is(WriteEd25519(existing, newKey(t), pass(testPass)), os.ErrExist) == false {
		t.Error("overwrite error should wrap os.ErrExist")
	}
}

// TestNoPlaintextSeed makes sure neither the seed nor its base64 form, nor
// our header, shows up in the bytes on disk.
func TestNoPlaintextSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.age")
	key := newKey(t)
	if err := WriteEd25519(path, key, pass(testPass)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, needle := range map[string][]byte{
		"seed":        key.Seed(),
		"base64 seed": []byte(base64.StdEncoding.EncodeToString(key.Seed())),
		"private key": key,
		"header":      []byte(Header),
	} {
		if bytes.Contains(data, needle) {
			t.Errorf("key file contains the %s in clear", name)
		}
	}
	if !bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) {
		t.Error("key file is not an age file")
	}
}

func TestPassphraseFromEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	tests := []struct {
		name    string
		env     string
		file    string
		want    string
		wantErr string
	}{
		{"file wins over env", "from-env", write("a", "from-file\n", 0o600), "from-file", ""},
		{"crlf trimmed", "", write("b", "pw\r\n", 0o600), "pw", ""},
		{"inner newlines kept", "", write("c", "a\nb\n", 0o600), "a\nb", ""},
		{"env", "from-env", "", "from-env", ""},
		{"nothing", "", "", "", "no passphrase"},
		{"empty file", "x", write("d", "\n", 0o600), "", "empty"},
		{"open file", "", write("e", "pw", 0o644), "", "too open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvPassphrase, tt.env)
			got, err := PassphraseFromEnv(tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func TestAgeIdentityRoundtrip(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	pq, _ := age.GenerateHybridIdentity()
	tests := []struct {
		name     string
		identity string
		want     string // error substring; "" means success
	}{
		{"x25519", x.String(), ""},
		{"hybrid", pq.String(), ""},
		{"garbage", "AGE-SECRET-KEY-1NOTAKEY", "malformed X25519"},
		{"public key", x.Recipient().String(), "not an age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "id.age")
			err := WriteAgeIdentity(path, tt.identity, pass(testPass))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.identity) {
					t.Fatalf("error = %v, want %q without the identity", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			if bytes.Contains(raw, []byte(tt.identity)) {
				t.Error("identity stored in clear")
			}
			id, err := ReadAgeIdentity(path, pass(testPass))
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := id.(interface{ String() string }); !ok || s.String() != tt.identity {
				t.Error("identity differs after roundtrip")
			}
			// A signing-key reader must not accept an identity file, and
			// the reverse.
			if _, err := ReadEd25519(path, pass(testPass)); err == nil {
				t.Error("ReadEd25519 accepted an age identity file")
			}
		})
	}
	path := filepath.Join(t.TempDir(), "k.age")
	if err := WriteEd25519(path, newKey(t), pass(testPass)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAgeIdentity(path, pass(testPass)); err == nil {
		t.Error("ReadAgeIdentity accepted a signing key file")
	}
}

// TestWorkFactorWritersAndReadersAgree: every work factor a writer accepts
// a reader opens, and a writer refuses every work factor a reader would
// refuse (23..30 were accepted before and could never be opened) or one
// below the floor.
func TestWorkFactorWritersAndReadersAgree(t *testing.T) {
	dir := t.TempDir()
	for _, wf := range []int{MinWorkFactor - 1, 1, MaxWorkFactor + 1, 30} {
		err := WriteEd25519(filepath.Join(dir, fmt.Sprint("bad", wf)), newKey(t), Protector{Passphrase: []byte(testPass), WorkFactor: wf})
		if err == nil || !strings.Contains(err.Error(), "work factor") {
			t.Errorf("work factor %d: %v", wf, err)
		}
	}
	// The edges of the range both open (MaxWorkFactor costs seconds: check
	// it against age's reader limit directly rather than by scrypt).
	path := filepath.Join(dir, "min")
	k := newKey(t)
	if err := WriteEd25519(path, k, Protector{Passphrase: []byte(testPass), WorkFactor: MinWorkFactor}); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadEd25519(path, pass(testPass)); err != nil || !got.Equal(k) {
		t.Fatalf("read at the floor: %v", err)
	}
	if err := CheckWorkFactor(MaxWorkFactor); err != nil {
		t.Fatal(err)
	}
	// A file demanding more than the cap is refused by a reader before any
	// scrypt work (its header says 23; writing one for real takes minutes).
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr := fmt.Sprintf(" %d\n", MinWorkFactor)
	i := bytes.Index(data, []byte(hdr))
	if i < 0 || !bytes.HasPrefix(data[bytes.LastIndex(data[:i], []byte("-> ")):], []byte("-> scrypt ")) {
		t.Fatal("no scrypt stanza in the key file")
	}
	forged := append(append(bytes.Clone(data[:i]), fmt.Sprintf(" %d\n", MaxWorkFactor+1)...), data[i+len(hdr):]...)
	over := filepath.Join(dir, "over")
	if err := os.WriteFile(over, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEd25519(over, pass(testPass)); err == nil || !strings.Contains(err.Error(), "work factor") {
		t.Errorf("file above the cap: %v", err)
	}
}

func TestWeakPassphraseRefused(t *testing.T) {
	dir := t.TempDir()
	for _, weak := range []string{"pw", "hunter2", "aaaaaaaaaaaaaaaa", "abababababab", "123412341234"} {
		err := WriteEd25519(filepath.Join(dir, weak), newKey(t), pass(weak))
		if !errors.Is(err, ErrWeakPassphrase) {
			t.Errorf("%q: %v", weak, err)
		}
	}
	for _, ok := range []string{testPass, "correct horse battery staple", "Tr0ub4dor&3xQ"} {
		if err := CheckPassphrase([]byte(ok)); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
