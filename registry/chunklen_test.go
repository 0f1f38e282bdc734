package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSameFileTwoRegistriesUnrelatedChunkLengths: one file stored in two
// registries shows a host two unrelated sequences of sealed chunk lengths
// (each registry chunks with its own secret seed), so a host cannot tell
// it is the same file. With one guest-wide seed the two were identical.
func TestSameFileTwoRegistriesUnrelatedChunkLengths(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 48 MiB")
	}
	fx := newFixture(t)
	ctx := context.Background()
	file := make([]byte, 24<<20)
	rng := rand.NewChaCha8([32]byte{5})
	rng.Read(file) // incompressible, as scanned deeds mostly are
	for _, reg := range []string{"land", "population"} {
		if _, err := fx.reg.PutBlob(ctx, reg, bytes.NewReader(file)); err != nil {
			t.Fatal(err)
		}
	}
	fx.close(t) // packs are on the backend now
	land := sealedLengths(t, filepath.Join(fx.dir, "blobs", BlobPrefix("land")))
	pop := sealedLengths(t, filepath.Join(fx.dir, "blobs", BlobPrefix("population")))
	if len(land) < 8 || len(pop) < 8 {
		t.Fatalf("%d and %d chunks: the file did not chunk", len(land), len(pop))
	}
	// Lengths the two share, as a multiset: all of them with one seed.
	common, j := 0, 0
	for _, l := range land {
		for j < len(pop) && pop[j] < l {
			j++
		}
		if j < len(pop) && pop[j] == l {
			common++
			j++
		}
	}
	if common*4 >= 3*min(len(land), len(pop)) {
		t.Fatalf("%d of %d/%d sealed chunk lengths shared between the registries:\nland %v\npopulation %v", common, len(land), len(pop), land, pop)
	}
	t.Logf("%d and %d chunks, %d lengths in common (Padmé rounding makes some coincide)", len(land), len(pop), common)
}

// sealedLengths reads, as a host would, every sealed chunk length in the
// pack headers under dir (docs/store.md: header = count × (id | length
// u32), trailer = count u32 | SHA-256(header) | "CHPACK01"), sorted.
func sealedLengths(t *testing.T, dir string) []int {
	t.Helper()
	var out []int
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !bytes.Contains([]byte(path), []byte("/data/")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		tr := b[len(b)-44:]
		if string(tr[36:]) != "CHPACK01" {
			t.Fatalf("%s: not a pack", path)
		}
		n := int(binary.BigEndian.Uint32(tr))
		hdr := b[len(b)-44-36*n : len(b)-44]
		if sha256.Sum256(hdr) != [32]byte(tr[4:36]) {
			t.Fatalf("%s: header checksum", path)
		}
		for i := range n {
			out = append(out, int(binary.BigEndian.Uint32(hdr[36*i+32:])))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
