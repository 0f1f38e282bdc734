package bundle

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/replica"
)

// FuzzParseManifest: manifest.json comes off a disk carried across a
// border. Parsing it never panics, refuses with an *Error naming it, and
// every path it lists is either refused by classify or one that the
// exporter writes, spelled exactly as the exporter spells it.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"chancery-bundle/v1","guest":"g","origin":"o","site":"s","from":0,"size":2,"epoch":1,"root":"00","withheld":0,"created":"2026-11-26T05:13:53Z","files":[{"path":"checkpoint","sha256":"00","size":1},{"path":"batches/0.batch","sha256":"00","size":1},{"path":"blobs/land/data/` + strings.Repeat("ab", 32) + `","sha256":"00","size":1}]}`))
	f.Add([]byte(`{"files":[{"path":"batches/007.batch"},{"path":"blobs/.x/data/00"},{"path":"../checkpoint"}]}`))
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			var be *Error
			if !errors.As(err, &be) || be.Part != ManifestName || !errors.Is(err, replica.ErrRefused) {
				t.Fatalf("manifest refused with %v (%T), not a bundle error naming %s", err, err, ManifestName)
			}
			return
		}
		for _, file := range m.Files {
			var want string
			switch kind, reg, name := classify(file.Path); kind {
			case "":
				continue
			case "checkpoint":
				want = bundleCheckpoint
			case "batch":
				num := strings.TrimSuffix(strings.TrimPrefix(file.Path, bundleBatchDir+"/"), batchSuffix)
				n, err := strconv.ParseUint(num, 10, 64)
				if err != nil {
					t.Fatalf("%q classified as a batch: %v", file.Path, err)
				}
				want = batchPath(n)
			case "pack":
				want = packPath(reg, name)
			default:
				t.Fatalf("%q classified as %q", file.Path, kind)
			}
			if file.Path != want {
				t.Fatalf("%q classified as a bundle file the exporter names %q", file.Path, want)
			}
			if filepath.IsAbs(file.Path) || strings.Contains(file.Path, "..") {
				t.Fatalf("%q, outside the bundle, classified as a bundle file", file.Path)
			}
		}
	})
}
