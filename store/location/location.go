// Package location chooses and opens the blob backend a configuration
// names: the fs backend in a directory, or an S3-compatible object store
// (restic's internal/backend/location plays the same part).
//
// It is a package of its own rather than a function of package store
// because the backends import store (store/fs and store/s3 implement
// store.Backend and run its shared contract suite, store/storetest), so
// store cannot import them without a cycle. Everything that opens a blob
// store from configuration (the site daemon, the commands) calls Open
// here, so that one place knows how a backend is chosen.
package location

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/store"
	storefs "github.com/chancery-gov/chancery/store/fs"
	"github.com/chancery-gov/chancery/store/s3"
)

// Config selects the blob store backend, as a site's configuration file
// spells it (blobs: in docs/operations.md).
type Config struct {
	// Backend is "fs" (default) or "s3".
	Backend string `yaml:"backend"`
	// Dir is the fs backend's directory; default D/sites/<site>/blobs.
	Dir string    `yaml:"dir"`
	S3  *S3Config `yaml:"s3"`
}

// S3Config configures an S3-compatible object store. Credentials are read
// from files so that the configuration itself holds no secret.
type S3Config struct {
	Endpoint      string `yaml:"endpoint"` // host:port, no scheme
	Bucket        string `yaml:"bucket"`
	Prefix        string `yaml:"prefix"`
	Region        string `yaml:"region"`
	AccessKeyFile string `yaml:"access_key_file"`
	SecretKeyFile string `yaml:"secret_key_file"`
	// Insecure speaks plain HTTP to the endpoint (a local MinIO or test
	// server). Blobs are sealed before they leave the process either way.
	Insecure bool `yaml:"insecure"`
	// CreateBucket makes the bucket if it is missing.
	CreateBucket bool `yaml:"create_bucket"`
	// ObjectLock, "compliance" or "governance", puts an S3 Object Lock
	// retention of the charter's retention period on every object, so that
	// not even the storage operator can delete blobs early. Empty: none.
	ObjectLock string `yaml:"object_lock"`
}

// Backend names for Config.Backend.
const (
	BackendFS = "fs"
	BackendS3 = "s3"
)

// Options are what Open needs beside the configuration.
type Options struct {
	// DefaultDir is the fs backend's directory when Config.Dir is empty.
	DefaultDir string
	// Retention is the charter's retention period: the S3 Object Lock
	// retention when Config.S3.ObjectLock asks for one.
	Retention time.Duration
}

// Open opens the blob backend cfg names: the fs backend in cfg.Dir (or
// o.DefaultDir), or an S3-compatible store with credentials read from
// files only their owner may read.
func Open(ctx context.Context, cfg Config, o Options) (store.Backend, error) {
	switch cfg.Backend {
	case "", BackendFS:
		dir := cfg.Dir
		if dir == "" {
			dir = o.DefaultDir
		}
		if dir == "" {
			return nil, errors.New("fs backend: no directory")
		}
		return storefs.New(dir)
	case BackendS3:
		sc := cfg.S3
		if sc == nil {
			return nil, errors.New("s3 settings missing")
		}
		access, err := readSecretFile(sc.AccessKeyFile)
		if err != nil {
			return nil, fmt.Errorf("access key: %w", err)
		}
		secret, err := readSecretFile(sc.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		s3cfg := s3.Config{Endpoint: sc.Endpoint, Bucket: sc.Bucket, Prefix: sc.Prefix, Region: sc.Region,
			AccessKey: access, SecretKey: secret, Insecure: sc.Insecure, CreateBucket: sc.CreateBucket}
		if sc.ObjectLock != "" {
			if o.Retention <= 0 {
				return nil, errors.New("object_lock needs a retention period in the charter's safeguards")
			}
			s3cfg.Lock = &s3.Lock{Mode: s3.LockMode(strings.ToUpper(sc.ObjectLock)), Retention: o.Retention}
		}
		return s3.New(ctx, s3cfg)
	default:
		return nil, fmt.Errorf("unknown backend %q", cfg.Backend)
	}
}

// readSecretFile reads a one-line credential that only its owner may read.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: permissions %#o are too open; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	v := string(bytes.TrimRight(b[:n], "\r\n"))
	if v == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return v, nil
}
