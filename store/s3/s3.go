// Package s3 is the store backend for S3-compatible object stores (Ceph,
// SeaweedFS, MinIO, versitygw, a cloud provider): the way a state with
// petabytes of attachments scales beyond one disk.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/chancery-gov/chancery/store"
)

// LockMode is an S3 Object Lock retention mode.
type LockMode string

const (
	// Compliance: nobody, not even the bucket owner's root account, can
	// delete a version or shorten its retention before it ends. This is
	// the mode that holds against a hostile host.
	Compliance LockMode = "COMPLIANCE"
	// Governance: deletion needs the s3:BypassGovernanceRetention
	// permission and an explicit bypass header; this backend never sends it.
	Governance LockMode = "GOVERNANCE"
)

// Lock asks for every saved object to be retained for Retention from the
// moment it is saved, typically the charter's retention period.
type Lock struct {
	Mode      LockMode
	Retention time.Duration
}

// Config describes one guest's place in a bucket.
type Config struct {
	Endpoint  string // host:port
	Bucket    string
	Prefix    string // e.g. the guest's id: several guests share a bucket, each under its own prefix
	AccessKey string
	SecretKey string
	Region    string
	// Insecure selects plain HTTP. Only for loopback and tests: the
	// content is sealed, but credentials and request integrity are not.
	Insecure bool
	// Transport overrides the HTTP transport (custom CA, proxies).
	Transport http.RoundTripper
	// CreateBucket makes the bucket if it does not exist, with object lock
	// enabled when Lock is set (object lock can only be chosen at creation).
	CreateBucket bool
	// Lock, if set, puts a retention on every object saved. New refuses a
	// bucket without object lock rather than pretend retention exists.
	Lock *Lock
}

// ErrRetained marks a Remove refused because the object is under
// retention (or a legal hold).
var ErrRetained = errors.New("object is under retention")

// Backend stores objects as <prefix>/<name> in one bucket.
type Backend struct {
	client *minio.Client
	cfg    Config
	prefix string
}

var _ store.Backend = (*Backend)(nil)

// New connects and checks the bucket (creating it if asked).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" && !store.ValidName(prefix) {
		return nil, fmt.Errorf("s3 backend: invalid prefix %q", cfg.Prefix)
	}
	if cfg.Lock != nil {
		if cfg.Lock.Mode != Compliance && cfg.Lock.Mode != Governance {
			return nil, fmt.Errorf("s3 backend: lock mode %q: want COMPLIANCE or GOVERNANCE", cfg.Lock.Mode)
		}
		if cfg.Lock.Retention < time.Second {
			return nil, fmt.Errorf("s3 backend: lock retention %v too short", cfg.Lock.Retention)
		}
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    !cfg.Insecure,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 backend %s: client: %w", cfg.Endpoint, err)
	}
	b := &Backend{client: client, cfg: cfg, prefix: prefix}
	exists, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 backend %s: bucket %s: %w", cfg.Endpoint, cfg.Bucket, err)
	}
	if !exists {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("s3 backend %s: bucket %s: %w", cfg.Endpoint, cfg.Bucket, iofs.ErrNotExist)
		}
		err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: cfg.Lock != nil})
		if err != nil {
			return nil, fmt.Errorf("s3 backend %s: create bucket %s: %w", cfg.Endpoint, cfg.Bucket, err)
		}
	}
	if cfg.Lock != nil {
		enabled, _, _, _, err := client.GetObjectLockConfig(ctx, cfg.Bucket)
		if err != nil || enabled != "Enabled" {
			return nil, fmt.Errorf("s3 backend %s: bucket %s has no object lock (%q, %v); retention was asked for and cannot be enforced", cfg.Endpoint, cfg.Bucket, enabled, err)
		}
	}
	return b, nil
}

// Client exposes the underlying client for administration and tests.
func (b *Backend) Client() *minio.Client { return b.client }

func (b *Backend) key(name string) (string, error) {
	if !store.ValidName(name) {
		return "", fmt.Errorf("s3 backend %s/%s: invalid object name %q", b.cfg.Bucket, b.prefix, name)
	}
	if b.prefix == "" {
		return name, nil
	}
	return b.prefix + "/" + name, nil
}

func (b *Backend) where(key string) string {
	return b.cfg.Endpoint + "/" + b.cfg.Bucket + "/" + key
}

// wrap maps S3 error codes onto the errors the store contract names.
func wrap(err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NotFound" || resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w (%v)", iofs.ErrNotExist, err)
	case resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%w (%v)", io.ErrUnexpectedEOF, err)
	case resp.Code == "AccessDenied" && strings.Contains(strings.ToLower(resp.Message), "lock"),
		resp.Code == "ObjectLocked", strings.Contains(strings.ToLower(resp.Message), "worm protected"),
		strings.Contains(strings.ToLower(resp.Message), "object lock"):
		return fmt.Errorf("%w (%v)", ErrRetained, err)
	}
	return err
}

// Save is a single PUT (S3 makes it atomic and durable before it answers).
// Multipart is disabled so there is never a half-assembled upload to
// clean up; packs are far below the 5 GiB single-PUT limit.
func (b *Backend) Save(ctx context.Context, name string, data io.Reader, size int64) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	if size < 0 || size > 5<<30 {
		return fmt.Errorf("s3 backend: save %s: size %d out of range", b.where(key), size)
	}
	// A reader with the wrong length must not become an object: counting
	// catches a short reader (the PUT fails on its Content-Length) and a
	// long one (checked before the request completes).
	cr := &exactReader{r: data, left: size}
	opts := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: true,
	}
	if b.cfg.Lock != nil {
		opts.Mode = minio.RetentionMode(b.cfg.Lock.Mode)
		opts.RetainUntilDate = time.Now().Add(b.cfg.Lock.Retention).UTC()
		// S3 requires an integrity header on PUTs with retention.
		opts.SendContentMd5 = true
	}
	if _, err := b.client.PutObject(ctx, b.cfg.Bucket, key, cr, size, opts); err != nil {
		return fmt.Errorf("s3 backend: save %s: %w", b.where(key), wrap(err))
	}
	if cr.err != nil {
		return fmt.Errorf("s3 backend: save %s: %w", b.where(key), cr.err)
	}
	return nil
}

// exactReader fails the upload if the source has more or fewer bytes
// than declared, so the request is aborted before the server commits it.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		// Peek one byte: more data than declared is an error.
		var one [1]byte
		n, err := e.r.Read(one[:])
		if n > 0 {
			e.err = errors.New("reader holds more bytes than the declared size")
			return 0, e.err
		}
		if err == nil {
			return 0, nil
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.err = fmt.Errorf("reader ended %d bytes short of the declared size", e.left)
		return n, e.err
	}
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// Load issues a ranged GET. The first Stat sends the request, so a missing
// object is reported here and not on the first Read.
func (b *Backend) Load(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	key, err := b.key(name)
	if err != nil {
		return nil, err
	}
	if off < 0 || length < 0 {
		return nil, fmt.Errorf("s3 backend: load %s: bad range %d+%d", b.where(key), off, length)
	}
	var opts minio.GetObjectOptions
	if off > 0 || length > 0 {
		end := int64(0)
		if length > 0 {
			end = off + length - 1
		}
		if err := opts.SetRange(off, end); err != nil {
			return nil, fmt.Errorf("s3 backend: load %s: %w", b.where(key), err)
		}
	}
	obj, err := b.client.GetObject(ctx, b.cfg.Bucket, key, opts)
	if err != nil {
		return nil, fmt.Errorf("s3 backend: load %s: %w", b.where(key), wrap(err))
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, fmt.Errorf("s3 backend: load %s: %w", b.where(key), wrap(err))
	}
	// S3 answers a range that runs past the end with the bytes it has;
	// the contract wants an error instead.
	if length > 0 && info.Size != length {
		obj.Close()
		return nil, fmt.Errorf("s3 backend: load %s: range %d+%d got %d bytes: %w", b.where(key), off, length, info.Size, io.ErrUnexpectedEOF)
	}
	return obj, nil
}

// Stat is a HEAD request.
func (b *Backend) Stat(ctx context.Context, name string) (int64, error) {
	key, err := b.key(name)
	if err != nil {
		return 0, err
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, fmt.Errorf("s3 backend: stat %s: %w", b.where(key), wrap(err))
	}
	return info.Size, nil
}

// List pages through the keys under the guest's prefix.
func (b *Backend) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	full := prefix
	if b.prefix != "" {
		full = b.prefix + "/" + prefix
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objects := b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true})
	for obj := range objects {
		if obj.Err != nil {
			return fmt.Errorf("s3 backend: list %s: %w", b.where(full), wrap(obj.Err))
		}
		name := obj.Key
		if b.prefix != "" {
			name = strings.TrimPrefix(name, b.prefix+"/")
		}
		if !store.ValidName(name) {
			continue // not ours: e.g. a directory marker made by another tool
		}
		if err := fn(name, obj.Size); err != nil {
			cancel()
			for range objects {
			}
			return fmt.Errorf("s3 backend: list %s: %w", b.where(full), err)
		}
	}
	return ctx.Err()
}

// Remove deletes every version of the key. A plain DELETE on a versioned
// bucket (object lock implies versioning) only adds a delete marker and
// leaves the data in place, which would make Remove both a lie and, under
// retention, a silent no-op. Deleting each version is what retention
// actually forbids, so a locked object makes Remove fail with ErrRetained.
func (b *Backend) Remove(ctx context.Context, name string) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var versions []string
	for obj := range b.client.ListObjects(lctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if obj.Err != nil {
			return fmt.Errorf("s3 backend: remove %s: list versions: %w", b.where(key), wrap(obj.Err))
		}
		if obj.Key == key {
			versions = append(versions, obj.VersionID)
		}
	}
	for _, v := range versions {
		opts := minio.RemoveObjectOptions{}
		if v != "" && v != "null" {
			opts.VersionID = v
		}
		if err := b.client.RemoveObject(ctx, b.cfg.Bucket, key, opts); err != nil {
			return fmt.Errorf("s3 backend: remove %s version %q: %w", b.where(key), v, wrap(err))
		}
	}
	return nil
}
