package keyfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

func TestAgeIdentityRoundTrip(t *testing.T) {
	p := Protector{Passphrase: []byte("custodian passphrase"), WorkFactor: 10}
	hybrid, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	classic, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		id   string
		rcpt age.Recipient
	}{
		"hybrid": {hybrid.String(), hybrid.Recipient()},
		"x25519": {classic.String(), classic.Recipient()},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.key")
			if err := WriteAgeIdentity(path, tc.id, p); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("AGE-SECRET-KEY")) {
				t.Fatal("identity stored in clear")
			}
			id, err := ReadAgeIdentity(path, p)
			if err != nil {
				t.Fatal(err)
			}
			// The identity read back opens what was sealed to its recipient.
			var buf bytes.Buffer
			w, _ := age.Encrypt(&buf, tc.rcpt)
			w.Write([]byte("share"))
			w.Close()
			if _, err := age.Decrypt(&buf, id); err != nil {
				t.Fatalf("identity read back does not decrypt: %v", err)
			}
			if _, err := ReadAgeIdentity(path, Protector{Passphrase: []byte("wrong")}); err == nil {
				t.Fatal("wrong passphrase accepted")
			}
			if _, err := ReadEd25519(path, p); err == nil || !strings.Contains(err.Error(), "not a chancery ed25519 key") {
				t.Fatalf("identity file read as an Ed25519 key: %v", err)
			}
		})
	}
	for _, bad := range []string{"not an identity", hybrid.String() + "\n" + classic.String(), "# comment\n" + classic.String()} {
		if err := WriteAgeIdentity(filepath.Join(t.TempDir(), "x"), bad, p); err == nil {
			t.Fatalf("identity input %q accepted", bad[:10])
		}
	}
}
