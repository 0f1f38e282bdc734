package registry

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTamperedLedgerBytes flips, truncates and swaps stored ledger bytes at
// random. Every read of an affected record fails with an error naming it;
// every other record still reads.
func TestTamperedLedgerBytes(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 12; round++ {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(round), 99))
			fx := newFixture(t)
			const n = 600
			importPublished(t, fx, "DR-", n)
			// Pick a bundle and damage it in one of three ways.
			bundles := bundleFiles(t, fx.log.Dir())
			path := bundles[rng.IntN(len(bundles))]
			b, _ := os.ReadFile(path)
			first := bundleFirstIndex(t, fx.log.Dir(), path)
			entries := splitEntries(b)
			affected := map[uint64]bool{}
			switch round % 3 {
			case 0: // flip one byte inside one entry
				k := rng.IntN(len(entries))
				off := entries[k].off + 2 + rng.IntN(entries[k].len)
				b[off] ^= byte(1 + rng.IntN(255))
				affected[first+uint64(k)] = true
			case 1: // truncate: every entry from the cut on is gone or damaged
				cut := rng.IntN(len(b))
				b = b[:cut]
				for k, e := range entries {
					if e.off+2+e.len > cut {
						affected[first+uint64(k)] = true
					}
				}
			case 2: // swap two whole entries of the same size
				i, j := rng.IntN(len(entries)), rng.IntN(len(entries))
				for entries[i].len != entries[j].len || i == j {
					i, j = rng.IntN(len(entries)), rng.IntN(len(entries))
				}
				ei, ej := entries[i], entries[j]
				tmp := append([]byte(nil), b[ei.off:ei.off+2+ei.len]...)
				copy(b[ei.off:], b[ej.off:ej.off+2+ej.len])
				copy(b[ej.off:], tmp)
				affected[first+uint64(i)], affected[first+uint64(j)] = true, true
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			failed := 0
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("DR-%d", i)
				h, _ := fx.reg.History(ctx, "population", id)
				rec, err := fx.reg.Get(ctx, "population", id, AsOf{})
				if affected[h[0].Index] {
					failed++
					if err == nil {
						t.Errorf("record %s (ledger entry %d) read despite tampering: %s", id, h[0].Index, rec.Data)
					} else if !strings.Contains(err.Error(), "record "+id+" ") {
						t.Errorf("error for tampered record %s does not name it: %v", id, err)
					}
				} else if err != nil {
					t.Errorf("untouched record %s (ledger entry %d) fails: %v", id, h[0].Index, err)
				}
			}
			if failed == 0 {
				t.Fatal("the tampering affected no record")
			}
		})
	}
}

type span struct{ off, len int }

func splitEntries(b []byte) []span {
	var out []span
	for off := 0; off+2 <= len(b); {
		l := int(b[off])<<8 | int(b[off+1])
		if off+2+l > len(b) {
			break
		}
		out = append(out, span{off, l})
		off += 2 + l
	}
	return out
}

func bundleFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(dir, "tile", "entries"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, ".p") {
			out = append(out, p)
		}
		return nil
	})
	if len(out) == 0 {
		t.Fatal("no full entry bundles")
	}
	return out
}

func bundleFirstIndex(t *testing.T, dir, path string) uint64 {
	rel, _ := filepath.Rel(dir, path)
	var n uint64
	for _, g := range strings.Split(strings.TrimPrefix(filepath.ToSlash(rel), "tile/entries/"), "/") {
		var d uint64
		fmt.Sscanf(strings.TrimPrefix(g, "x"), "%d", &d)
		n = n*1000 + d
	}
	return n * 256
}

// TestProvenEntryKeptAfterTamper: a record read once was proven against
// the site's own published tree, so a later read serves those bytes from
// memory (still unsealed and checked) even after the host damages the
// tiles, while a record not read before the damage is refused as ever.
func TestProvenEntryKeptAfterTamper(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	importPublished(t, fx, "KP-", 600)
	read, unread := "KP-1", "KP-2"
	before, err := fx.reg.Get(ctx, "population", read, AsOf{})
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := fx.reg.History(ctx, "population", read)
	hu, _ := fx.reg.History(ctx, "population", unread)
	// Damage every entry bundle: flip a byte inside each entry.
	for _, path := range bundleFiles(t, fx.log.Dir()) {
		b, _ := os.ReadFile(path)
		for _, e := range splitEntries(b) {
			b[e.off+2+e.len/2] ^= 0x5a
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	after, err := fx.reg.Get(ctx, "population", read, AsOf{})
	if err != nil {
		t.Fatalf("record %s (ledger entry %d), proven before the damage: %v", read, hr[0].Index, err)
	}
	if !bytes.Equal(after.Data, before.Data) {
		t.Errorf("record %s: %s after the damage, %s before", read, after.Data, before.Data)
	}
	if rec, err := fx.reg.Get(ctx, "population", unread, AsOf{}); err == nil {
		t.Errorf("record %s (ledger entry %d) read despite tampering: %s", unread, hu[0].Index, rec.Data)
	}
}

// importPublished imports n population records prefix0 … prefix(n-1) and
// waits until the published tree covers them.
func importPublished(t *testing.T, fx *fixture, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		fmt.Fprintf(&in, `{"registry":"population","id":%q,"record":%s}`+"\n", id, person(id, fmt.Sprintf("Name%d", i)))
	}
	if _, err := fx.reg.Import(ctx, &in, ImportOptions{Batch: 100}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fx.log.WaitPublished(ctx, uint64(n)); err != nil {
		t.Fatal(err)
	}
}
