package seal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Domain labels. Every derivation and every additional-data encoding starts
// with one of these, so two purposes can never produce the same input even
// if their variable fields collide.
const (
	labelRootKey     = "chancery/seal/v1 root-key"
	labelRootSalt    = "chancery/seal/v1 root"
	labelHKDFSalt    = "chancery/seal/v1"
	labelData        = "data"
	labelBlob        = "blob"
	labelBlobID      = "blob-id"
	labelMACID       = "mac-id"
	labelMACIndex    = "mac-index"
	labelMACCommit   = "mac-commit"
	labelMACRecord   = "mac-record-commit"
	labelSiteKEK     = "site-kek"
	adRecord         = "chancery/seal/v1 record"
	adBlob           = "chancery/seal/v1 blob"
	adSite           = "chancery/seal/v1 site"
	adSiteWrap       = "chancery/seal/v1 site-key"
	labelPackageID   = "chancery/seal/v2 custody-package"
	labelShareCommit = "chancery/seal/v2 share-commit"
	labelRootCheck   = "root-check"
	labelSiteKeyID   = "chancery/seal/v1 site-key-id"
	maxNameLen       = 1<<16 - 1
	keySize          = 32
	nonceSize        = 12
	tagSize          = 16
	formatRecordV1   = 0x01 // refused: its AD bound no kind, index values or attachments
	formatRecordV2   = 0x02 // refused: its plaintext was not padded, so its length showed
	formatRecord     = 0x03
	formatBlobV1     = 0x01
	formatSiteV1     = 0x01
	formatWrapV1     = 0x01
	recordHeaderLen  = 1 + 4 + nonceSize
)

var errNameTooLong = errors.New("name longer than 65535 bytes")

// appendLP appends a uint16 big-endian length and then b. Every variable
// field in a derivation label or additional data is framed this way, which
// makes the encodings injective: ("ab","c") and ("a","bc") differ.
func appendLP(dst []byte, b string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// checkNames refuses names that appendLP cannot frame.
func checkNames(names ...string) error {
	for _, n := range names {
		if len(n) > maxNameLen {
			return fmt.Errorf("%w: %.40q…", errNameTooLong, n)
		}
	}
	return nil
}

// deriveInfo is the HKDF info string of one derived key:
//
//	"chancery/seal/v1" 0x00 ‖ lp(purpose) ‖ lp(guest) ‖ lp(scope) ‖ generation u32
//
// scope is the registry name, or the site id for a site KEK; generation is
// 0 for keys that do not rotate.
func deriveInfo(purpose, guest, scope string, gen uint32) string {
	b := make([]byte, 0, 32+len(purpose)+len(guest)+len(scope))
	b = append(b, labelHKDFSalt...)
	b = append(b, 0)
	b = appendLP(b, purpose)
	b = appendLP(b, guest)
	b = appendLP(b, scope)
	b = binary.BigEndian.AppendUint32(b, gen)
	return string(b)
}

// reader is a strict cursor over a byte slice: every read either succeeds
// fully or sets err, and done() insists that nothing is left over.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed %s", what)
	}
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail(what)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8(what string) uint8 {
	b := r.bytes(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16(what string) uint16 {
	b := r.bytes(2, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32(what string) uint32 {
	b := r.bytes(4, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) lp(what string) string {
	n := r.u16(what + " length")
	return string(r.bytes(int(n), what))
}

func (r *reader) done(what string) error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%d trailing bytes after %s", len(r.b), what)
	}
	return nil
}
