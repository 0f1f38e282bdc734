package store_test

import (
	"math/rand/v2"
	"testing"

	"github.com/chancery-gov/chancery/store"
)

// TestSealedChunksArePadded: what a host sees of a stored chunk — its
// sealed length in the pack — is the Padmé length of its payload plus the
// sealer's fixed overhead, not the chunk's exact length.
func TestSealedChunksArePadded(t *testing.T) {
	s, sl := openFS(t, t.TempDir(), store.Options{})
	defer s.Close()
	rng := rand.NewChaCha8([32]byte{9})
	overhead := sl.aead.NonceSize() + sl.aead.Overhead()
	for _, n := range []int{1000, 100_003, 300_007} {
		data := make([]byte, n)
		rng.Read(data) // incompressible: stored raw
		ref := put(t, s, sl, data)
		if err := s.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		loc, ok := s.ChunkAt(ref.Chunks[0])
		if !ok {
			t.Fatalf("chunk of %d bytes not located", n)
		}
		if want := store.Padme(1+4+n) + overhead; loc.Length != int64(want) {
			t.Errorf("chunk of %d bytes sealed to %d, want %d (Padmé)", n, loc.Length, want)
		}
		if loc.Length == int64(1+n+overhead) {
			t.Errorf("chunk of %d bytes sealed to its exact length plus overhead", n)
		}
		mustGet(t, s, sl, ref, data)
	}
}
