package location_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/s3test"
	"github.com/chancery-gov/chancery/store"
	storefs "github.com/chancery-gov/chancery/store/fs"
	"github.com/chancery-gov/chancery/store/location"
	"github.com/chancery-gov/chancery/store/s3"
)

func secretFile(t *testing.T, v string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(v+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// roundTrip saves an object through be and reads it back.
func roundTrip(t *testing.T, be store.Backend) {
	t.Helper()
	ctx := context.Background()
	if err := be.Save(ctx, "data/x", bytes.NewReader([]byte("blob")), 4); err != nil {
		t.Fatal(err)
	}
	rc, err := be.Load(ctx, "data/x", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "blob" {
		t.Fatalf("read back %q", b)
	}
}

// TestOpenFS: the fs backend in the configured directory, else the
// default one.
func TestOpenFS(t *testing.T) {
	ctx := context.Background()
	def, set := t.TempDir(), t.TempDir()
	for _, tt := range []struct {
		cfg  location.Config
		want string
	}{
		{location.Config{}, def},
		{location.Config{Backend: location.BackendFS}, def},
		{location.Config{Dir: set}, set},
	} {
		be, err := location.Open(ctx, tt.cfg, location.Options{DefaultDir: def})
		if err != nil {
			t.Fatal(err)
		}
		fb, ok := be.(*storefs.Backend)
		if !ok || fb.Root() != tt.want {
			t.Fatalf("%+v: %T in %v, want fs in %s", tt.cfg, be, fb, tt.want)
		}
		roundTrip(t, be)
	}
}

// TestOpenRefuses: what Open refuses, before reaching any server.
func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	good := secretFile(t, "key", 0o600)
	open := secretFile(t, "key", 0o644)
	empty := secretFile(t, "", 0o600)
	s3cfg := func(access, secret, lock string) location.Config {
		return location.Config{Backend: location.BackendS3, S3: &location.S3Config{Endpoint: "127.0.0.1:1", Bucket: "b",
			AccessKeyFile: access, SecretKeyFile: secret, ObjectLock: lock}}
	}
	for _, tt := range []struct {
		name string
		cfg  location.Config
		want string
	}{
		{"no directory", location.Config{}, "no directory"},
		{"unknown backend", location.Config{Backend: "tape"}, `unknown backend "tape"`},
		{"s3 without settings", location.Config{Backend: location.BackendS3}, "s3 settings missing"},
		{"readable access key", s3cfg(open, good, ""), "access key: " + open + ": permissions 0644 are too open"},
		{"empty secret key", s3cfg(good, empty, ""), "secret key: " + empty + ": empty"},
		{"missing key file", s3cfg(filepath.Join(t.TempDir(), "none"), good, ""), "access key"},
		{"object lock without retention", s3cfg(good, good, "compliance"), "object_lock needs a retention period"},
	} {
		_, err := location.Open(ctx, tt.cfg, location.Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// TestOpenS3: the s3 backend against a real S3 server, credentials read
// from files.
func TestOpenS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an S3 server")
	}
	srv := s3test.Start(t)
	cfg := location.Config{Backend: location.BackendS3, S3: &location.S3Config{Endpoint: srv.Endpoint, Bucket: "location-test",
		Region: srv.Region, AccessKeyFile: secretFile(t, srv.AccessKey, 0o600), SecretKeyFile: secretFile(t, srv.SecretKey, 0o600),
		Insecure: true, CreateBucket: true}}
	be, err := location.Open(context.Background(), cfg, location.Options{DefaultDir: t.TempDir(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := be.(*s3.Backend); !ok {
		t.Fatalf("opened %T, want the s3 backend", be)
	}
	roundTrip(t, be)
}
