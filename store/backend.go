// Package store keeps attachments as content-defined chunks that are
// compressed, sealed and deduplicated by a keyed hash, packed into large
// pack files and found again through an index.
//
// The package is cut along the trust boundary: a Backend stores opaque
// bytes under names and never sees a key; the Store above it chunks,
// compresses, seals (through a Sealer it is handed per call), packs and
// indexes. Everything a Backend holds is either ciphertext or a keyed
// chunk id, so a host operator learns sizes and counts and nothing else.
package store

import (
	"context"
	"io"
)

// Backend stores opaque objects under slash-separated names.
//
// Every implementation MUST pass storetest.Suite. The contract:
//
//   - Save is atomic: a concurrent or later reader sees either no object or
//     the complete object, never a prefix. When Save returns nil the object
//     is durable. Saving an existing name replaces it atomically. Exactly
//     size bytes are read from data; a different length is an error and
//     nothing is stored.
//   - Load returns length bytes starting at off (length 0 means to the end).
//     A missing name is an error wrapping io/fs.ErrNotExist. A range that
//     reaches past the end is an error, never a silently short read.
//   - Stat returns the size; a missing name wraps io/fs.ErrNotExist.
//   - List calls fn once for every stored name that starts with prefix, in
//     no particular order; an error from fn stops the listing and is
//     returned (wrapped).
//   - Remove deletes the object for good (on a versioned bucket: every
//     version). Removing a missing name is not an error, because object
//     stores cannot tell the difference without a race.
//
// Names consist of components of [A-Za-z0-9._-] separated by "/", none empty
// and none starting with "."; see ValidName.
type Backend interface {
	Save(ctx context.Context, name string, data io.Reader, size int64) error
	Load(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (int64, error)
	List(ctx context.Context, prefix string, fn func(name string, size int64) error) error
	Remove(ctx context.Context, name string) error
}

// ValidName reports whether name is acceptable to every Backend. The rule
// is narrow on purpose: it maps one-to-one onto file paths and S3 keys with
// no escaping, and a leading "." is reserved for backends' temporary files.
func ValidName(name string) bool {
	if name == "" || len(name) > 512 {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			c := name[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
			if !ok {
				return false
			}
			continue
		}
		if i == start || name[start] == '.' {
			return false
		}
		start = i + 1
	}
	return true
}
