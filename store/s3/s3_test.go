package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/s3test"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/s3"
	"github.com/chancery-gov/chancery/store/storetest"
)

func config(srv s3test.Config, bucket, prefix string) s3.Config {
	return s3.Config{
		Endpoint: srv.Endpoint, Bucket: bucket, Prefix: prefix,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region,
		Insecure: true, CreateBucket: true,
	}
}

// TestSuite runs the backend contract against a real versitygw, each
// subtest under its own prefix of one shared bucket: that the subtests do
// not see each other's objects is itself the prefix-isolation check.
func TestSuite(t *testing.T) {
	srv := s3test.Start(t)
	var n atomic.Int64
	storetest.Suite(t, func(t *testing.T) store.Backend {
		be, err := s3.New(context.Background(), config(srv, "chancery", fmt.Sprintf("guest-%d", n.Add(1))))
		if err != nil {
			t.Fatal(err)
		}
		return be
	})
}

// TestPrefixedSuite runs the contract through registry views of the S3
// backend: sibling views of one guest's prefix, one per subtest, beside a
// neighbouring registry's objects, so a view that leaked into another
// would fail the suite's exact listings.
func TestPrefixedSuite(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	be, err := s3.New(ctx, config(srv, "chancery", "guest-ua"))
	if err != nil {
		t.Fatal(err)
	}
	neighbour := store.Prefixed(be, "registries/p/")
	for _, name := range []string{"data/0000", "index/0000", "a"} {
		if err := neighbour.Save(ctx, name, bytes.NewReader([]byte("n")), 1); err != nil {
			t.Fatal(err)
		}
	}
	var n atomic.Int64
	storetest.Suite(t, func(t *testing.T) store.Backend {
		return store.Prefixed(be, fmt.Sprintf("registries/p%d/", n.Add(1)))
	})
}

func TestPrefixIsolation(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	a, err := s3.New(ctx, config(srv, "shared", "guest-a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.New(ctx, config(srv, "shared", "guest-b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, "data/x", bytes.NewReader([]byte("a's")), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "data/x"); err == nil {
		t.Fatal("guest b sees guest a's object")
	}
	if err := b.Remove(ctx, "data/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Stat(ctx, "data/x"); err != nil {
		t.Fatalf("guest b's remove touched guest a: %v", err)
	}
}

// TestObjectLock checks that with retention a Remove fails, in both modes,
// and that the data stays readable; and that once retention has passed
// Remove works again.
func TestObjectLock(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	for _, mode := range []s3.LockMode{s3.Compliance, s3.Governance} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := config(srv, "locked-"+map[s3.LockMode]string{s3.Compliance: "c", s3.Governance: "g"}[mode], "guest")
			cfg.Lock = &s3.Lock{Mode: mode, Retention: 3 * time.Second}
			be, err := s3.New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			data := []byte("a deed that must outlive the host's patience")
			if err := be.Save(ctx, "data/deed", bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			err = be.Remove(ctx, "data/deed")
			if !errors.Is(err, s3.ErrRetained) {
				t.Fatalf("remove under %s retention: %v, want ErrRetained", mode, err)
			}
			t.Logf("refused: %v", err)
			rc, err := be.Load(ctx, "data/deed", 0, 0)
			if err != nil {
				t.Fatalf("load after refused remove: %v", err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("content after refused remove: %q", got)
			}
			time.Sleep(4 * time.Second)
			if err := be.Remove(ctx, "data/deed"); err != nil {
				t.Fatalf("remove after retention ended: %v", err)
			}
			if _, err := be.Stat(ctx, "data/deed"); err == nil {
				t.Fatal("object still there after remove")
			}
		})
	}
}

func TestLockRequiresLockedBucket(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	if _, err := s3.New(ctx, config(srv, "plain", "")); err != nil {
		t.Fatal(err)
	}
	cfg := config(srv, "plain", "")
	cfg.Lock = &s3.Lock{Mode: s3.Compliance, Retention: time.Hour}
	if _, err := s3.New(ctx, cfg); err == nil {
		t.Fatal("lock on a bucket created without object lock was accepted")
	}
}
