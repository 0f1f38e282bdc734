package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/s3test"
	"github.com/chancery-gov/chancery/internal/state"
	storefs "github.com/chancery-gov/chancery/store/fs"
	"github.com/chancery-gov/chancery/store/s3"
)

// TestVerifyBlobsAgainstLedger (issue 11, item 8): on a demo site whose
// deeds are attachments, verify --blobs --root-key passes a clean store
// and opens every referenced chunk; a flipped byte in a pack, a deleted
// pack, and a chunk no pack or index holds any more are each found, and
// each finding names the pack (where known), the chunk, the registry,
// the record and the ledger index.
func TestVerifyBlobsAgainstLedger(t *testing.T) {
	dir, pass := demoState(t, 40)
	l := state.Layout{Dir: dir}
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	o := verifyOptions{target: l.Ledger("home"), noState: true, blobs: l.Blobs("home"),
		blobKeys: blobKeyFlags{rootKey: l.RootKey(), passFile: passFile}}
	out, err := verifyOut(t, o)
	if err != nil || !strings.Contains(out, "blobs: OK") || strings.Contains(out, "reference 0 chunks") || !strings.Contains(out, "chunks opened with the registries' blob keys") || strings.Contains(out, "blobs: 0 chunks opened") {
		t.Fatalf("clean site: %v\n%s", err, out)
	}

	var packs, indexes []string
	filepath.WalkDir(l.Blobs("home"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			// The fs backend fans names out: …/data/ab/abcd….
			switch filepath.Base(filepath.Dir(filepath.Dir(p))) {
			case "data":
				packs = append(packs, p)
			case "index":
				indexes = append(indexes, p)
			}
		}
		return nil
	})
	if len(packs) == 0 || len(indexes) == 0 {
		t.Fatalf("the demo wrote %d packs and %d index objects", len(packs), len(indexes))
	}
	victim := packs[0]
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		t.Helper()
		if err := os.WriteFile(victim, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	named := func(what string, wantProblem string) {
		t.Helper()
		_, err := verifyOut(t, o)
		if err == nil {
			t.Fatalf("%s: verify --blobs passed", what)
		}
		msg := err.Error()
		t.Logf("%s: %.600s", what, msg)
		for _, want := range []string{"FAILED", "ledger index ", "registry ", "record ", "version ", "chunk ", wantProblem} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the report lacks %q:\n%s", what, want, msg)
			}
		}
	}

	// One flipped byte in the sealed data of a pack.
	b := append([]byte(nil), orig...)
	b[len(b)/3] ^= 0x20
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	named("flipped byte", filepath.Base(victim))
	if _, err := verifyOut(t, o); err == nil || !strings.Contains(err.Error(), "1 of") || !strings.Contains(err.Error(), "its pack is damaged") {
		t.Fatalf("flipped byte: %v", err)
	}
	restore()

	// The pack deleted: its index object still names it.
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	named("deleted pack", "its pack is missing from the store")
	if _, err := verifyOut(t, o); err == nil || !strings.Contains(err.Error(), filepath.Base(victim)) {
		t.Fatalf("deleted pack not named: %v", err)
	}

	// And every index object too: the chunks are in no pack at all.
	for _, p := range indexes {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	named("chunk in no pack", "chunk missing")
	restore()

	// The same store with the pack back: clean again (the index objects
	// are gone, and the packs' own headers locate every chunk).
	if out, err := verifyOut(t, o); err != nil || !strings.Contains(out, "blobs: OK") {
		t.Fatalf("restored: %v\n%s", err, out)
	}
}

// TestVerifyBlobsS3: --blobs-config points verify at a site's blob store
// on S3 (versitygw): the demo's store copied there passes, and a flipped
// byte in one of its packs is found and named.
func TestVerifyBlobsS3(t *testing.T) {
	srv := s3test.Start(t)
	dir, _ := demoState(t, 30)
	l := state.Layout{Dir: dir}
	ctx := context.Background()
	src, err := storefs.New(l.Blobs("home"))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := s3.New(ctx, s3.Config{Endpoint: srv.Endpoint, Bucket: "blobs", Prefix: "demo", AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey, Region: srv.Region, Insecure: true, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	copied := 0
	if err := src.List(ctx, "", func(name string, size int64) error {
		rc, err := src.Load(ctx, name, 0, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		if strings.Contains(name, "/data/") && victim == "" {
			victim = name
		}
		copied++
		return dst.Save(ctx, name, rc, size)
	}); err != nil || victim == "" {
		t.Fatalf("copy to S3: %v (%d objects, pack %q)", err, copied, victim)
	}
	keys := t.TempDir()
	for name, v := range map[string]string{"access": srv.AccessKey, "secret": srv.SecretKey} {
		if err := os.WriteFile(filepath.Join(keys, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(keys, "blobs.yaml")
	yml := fmt.Sprintf("backend: s3\ns3:\n  endpoint: %s\n  bucket: blobs\n  prefix: demo\n  region: %s\n  access_key_file: %s\n  secret_key_file: %s\n  insecure: true\n",
		srv.Endpoint, srv.Region, filepath.Join(keys, "access"), filepath.Join(keys, "secret"))
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	o := verifyOptions{target: l.Ledger("home"), noState: true, blobKeys: blobKeyFlags{config: cfg}}
	out, err := verifyOut(t, o)
	if err != nil || !strings.Contains(out, fmt.Sprintf("blobs: OK — %d objects", copied)) {
		t.Fatalf("S3 copy of a clean store: %v\n%s", err, out)
	}
	rc, err := dst.Load(ctx, victim, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 4
	if err := dst.Remove(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := dst.Save(ctx, victim, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	_, err = verifyOut(t, o)
	if err == nil || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), "its pack is damaged") || !strings.Contains(err.Error(), "ledger index ") {
		t.Fatalf("flipped byte on S3: %v", err)
	}
}
