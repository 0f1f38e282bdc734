// Package bundle carries a guest's ledger and blobs to a site offline.
// A bundle is what replication would have sent one site,
// written to a directory instead of a connection, so that a disk carried
// across a border can seed a new site or catch up one that has been cut
// off. It is still sealed (nothing in it is ever decrypted: the exporter
// holds no key) and verifiable end to end by the site with public keys
// only. Layout of a bundle directory:
//
//	manifest.json                    every other file with its SHA-256 and size; guest, origin, site, from, size
//	checkpoint                       the writer's signed checkpoint the bundle reaches
//	batches/<first>.batch            entries [first, next first), replica.Batch encoding
//	blobs/<registry>/data/<hex>      the packs those entries reference, named by their SHA-256
//
// The manifest is written last, so a directory without one is an
// interrupted export and is refused. See docs/bundle.md.
//
// A bundle shares everything but its transport with live replication
// (package replica): its batches are cut by replica.BatchBuilder, exported
// from any replica.Source, and imported through the site's own
// replica.Receiver, with its checks and quota.

package bundle

import (
	"fmt"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
)

// Format is the manifest's format line.
const Format = "chancery-bundle/v1"

// Names inside a bundle directory.
const (
	ManifestName     = "manifest.json"
	bundleCheckpoint = "checkpoint"
	bundleBatchDir   = "batches"
	bundleBlobDir    = "blobs"
	batchSuffix      = ".batch"
	// maxManifestBytes bounds manifest.json: about 150 bytes per file,
	// so a million 16 MiB packs (16 TB) fit.
	maxManifestBytes = 256 << 20
	// DefaultBatchBytes bounds one batch file by default.
	DefaultBatchBytes = 4 << 20
	// siteTilesWait bounds how long Verify waits for a live mirror's
	// integrator to write the tiles of entries it has already accepted.
	siteTilesWait = 10 * time.Second
)

// Manifest describes a bundle: what it is for and every file in it.
type Manifest struct {
	Format string `json:"format"`
	Guest  string `json:"guest"`
	Origin string `json:"origin"`
	// Site is the site the bundle was made for: its placement decided
	// which entries are withheld stubs and which packs are present.
	Site string `json:"site"`
	// From is the size of the site's mirror the bundle extends; Size is
	// the size of the checkpoint it reaches.
	From uint64 `json:"from"`
	Size uint64 `json:"size"`
	// Epoch and Root repeat the checkpoint's, for people reading the file.
	Epoch    uint64    `json:"epoch"`
	Root     string    `json:"root"`
	Withheld uint64    `json:"withheld"`
	Created  time.Time `json:"created"`
	Files    []File    `json:"files"`
}

// File is one file of a bundle, by its slash-separated path inside
// the bundle directory.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Entries is the number of ledger entries the bundle brings.
func (m *Manifest) Entries() uint64 { return m.Size - m.From }

// Packs counts the pack files of the bundle.
func (m *Manifest) Packs() int {
	n := 0
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, bundleBlobDir+"/") {
			n++
		}
	}
	return n
}

// Bytes is the total size of the files the manifest lists.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Error is a bundle refused. Part names the first bad part found: a
// file of the bundle ("manifest.json", "checkpoint", "batches/0.batch",
// "blobs/land/data/…"), or "entry N" for an entry whose content is wrong.
// errors.Is(err, replica.ErrRefused) holds for every Error.
type Error struct {
	Part string
	Err  error
}

func (e *Error) Error() string { return "bundle: " + e.Part + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, replica.ErrRefused) hold.
func (e *Error) Is(target error) bool { return target == replica.ErrRefused }

func refuse(part, format string, args ...any) error {
	return &Error{Part: part, Err: fmt.Errorf(format, args...)}
}

// Progress reports an export, a verification or an import as it
// goes. TotalBytes is 0 while an export runs (it is not known ahead).
type Progress struct {
	Stage                 string // "export", "verify" or "import"
	Entries, TotalEntries uint64
	Packs                 int
	Bytes, TotalBytes     int64
}

// ExportOptions tune Export.
type ExportOptions struct {
	// Writers says which key signs each epoch's checkpoints (default
	// replica.HomeWriter): the exporter checks the source's checkpoint with it, so
	// that it never writes a bundle the site would refuse for that.
	Writers replica.Writers
	// FromRoot, if set, is the root of the site's tree at from (from its
	// last checkpoint or receipt): the export then refuses unless the
	// source's ledger extends it, so a site that forked is found at home
	// rather than after the journey.
	FromRoot *ledger.Hash
	// MaxBatchBytes and MaxBatchEntries bound one batch file (defaults
	// DefaultBatchBytes and 16384).
	MaxBatchBytes   int
	MaxBatchEntries int
	Now             func() time.Time
	Progress        func(Progress)
}
