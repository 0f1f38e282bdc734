package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"pgregory.net/rapid"
)

// TestRebuildEqualsLiveIndex: after any sequence of puts, deletes,
// imports and key rotations across registries, a Registries freshly opened
// on the ledger answers Get, Find, History and Count exactly as the one
// that wrote it, which kept its index up to date write by write.
func TestRebuildEqualsLiveIndex(t *testing.T) {
	ctx := context.Background()
	c := testCharter()
	// Few ids and few values, so that records get many versions and
	// values are shared by several records (and by records of one shard).
	type field struct{ registry, name string }
	fields := map[string][]string{}
	for _, d := range c.Registries {
		fields[d.Name] = d.Index
	}
	regs := []string{"population", "identity-documents", "land", "business", "legal-acts"}
	rapid.Check(t, func(t *rapid.T) {
		dir, err := os.MkdirTemp("", "chancery-rebuild-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		signer, _, err := ledger.NewLogSigner(c.Guest.Origin, priv)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.Open(ctx, filepath.Join(dir, "ledger"), ledger.Options{Origin: c.Guest.Origin, Signer: signer, CheckpointInterval: time.Millisecond, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		root, err := seal.NewRootKey()
		if err != nil {
			t.Fatal(err)
		}
		live, err := Open(ctx, Options{Charter: c, Site: "home", Log: l, Keys: seal.NewKeyring(c.Guest.ID, root)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { live.Close() })

		ids := rapid.IntRange(1, 40).Draw(t, "ids")
		id := rapid.Custom(func(t *rapid.T) string { return fmt.Sprintf("R-%d", rapid.IntRange(0, ids-1).Draw(t, "id")) })
		value := rapid.Custom(func(t *rapid.T) string { return fmt.Sprintf("v%d", rapid.IntRange(0, 5).Draw(t, "value")) })
		record := func(t *rapid.T, registry string) json.RawMessage {
			m := map[string]string{"note": rapid.StringN(0, 8, -1).Draw(t, "note")}
			for _, f := range fields[registry] {
				m[f] = value.Draw(t, f)
			}
			b, _ := json.Marshal(m)
			return b
		}
		used := map[field]map[string]bool{} // every (registry, field) value written
		idsUsed := map[string]map[string]bool{}
		note := func(registry, id string, rec json.RawMessage) {
			if idsUsed[registry] == nil {
				idsUsed[registry] = map[string]bool{}
			}
			idsUsed[registry][id] = true
			var m map[string]string
			json.Unmarshal(rec, &m)
			for _, f := range fields[registry] {
				k := field{registry, f}
				if used[k] == nil {
					used[k] = map[string]bool{}
				}
				used[k][m[f]] = true
			}
		}
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			registry := rapid.SampledFrom(regs).Draw(t, "registry")
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 5:
				id, rec := id.Draw(t, "id"), record(t, registry)
				if _, err := live.Put(ctx, registry, id, rec, nil); err != nil {
					t.Fatal(err)
				}
				note(registry, id, rec)
			case op < 7:
				id := id.Draw(t, "id")
				if _, err := live.Delete(ctx, registry, id); err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatal(err)
				}
			case op < 9:
				var in bytes.Buffer
				for n := rapid.IntRange(1, 30).Draw(t, "lines"); n > 0; n-- {
					registry := rapid.SampledFrom(regs).Draw(t, "registry")
					id, rec := id.Draw(t, "id"), record(t, registry)
					line, _ := json.Marshal(ImportLine{Registry: registry, ID: id, Record: rec})
					in.Write(append(line, '\n'))
					note(registry, id, rec)
				}
				if _, err := live.Import(ctx, &in, ImportOptions{Batch: rapid.IntRange(1, 8).Draw(t, "batch")}); err != nil {
					t.Fatal(err)
				}
			default:
				if _, err := live.Rotate(ctx, registry); err != nil {
					t.Fatal(err)
				}
			}
		}

		// Open indexes what the published checkpoint covers.
		if _, _, err := l.WaitPublished(ctx, l.Size()); err != nil {
			t.Fatal(err)
		}
		rebuilt, err := Open(ctx, Options{Charter: c, Site: "home", Log: l, Keys: seal.NewKeyring(c.Guest.ID, root)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rebuilt.Close() })
		for _, registry := range regs {
			n1, _ := live.Count(registry)
			n2, _ := rebuilt.Count(registry)
			if n1 != n2 {
				t.Fatalf("%s: live index counts %d records, rebuilt %d", registry, n1, n2)
			}
			for id := range idsUsed[registry] {
				h1, err1 := live.History(ctx, registry, id)
				h2, err2 := rebuilt.History(ctx, registry, id)
				if !sameErr(err1, err2) || !sameVersions(h1, h2) {
					t.Fatalf("%s %s history: live %v %+v, rebuilt %v %+v", registry, id, err1, h1, err2, h2)
				}
				ats := []AsOf{{}}
				for _, v := range h1 {
					idx, tm := v.Index, v.Time
					ats = append(ats, AsOf{Index: &idx}, AsOf{Time: &tm})
				}
				for _, at := range ats {
					r1, err1 := live.Get(ctx, registry, id, at)
					r2, err2 := rebuilt.Get(ctx, registry, id, at)
					if !sameErr(err1, err2) || !sameRecords([]*Record{r1}, []*Record{r2}) {
						t.Fatalf("%s %s get %+v: live %v %+v, rebuilt %v %+v", registry, id, at, err1, r1, err2, r2)
					}
				}
			}
			for _, f := range fields[registry] {
				vals := []string{"v-never-written"}
				for v := range used[field{registry, f}] {
					vals = append(vals, v)
				}
				sort.Strings(vals)
				for _, v := range vals {
					f1, err1 := live.Find(ctx, registry, f, v)
					f2, err2 := rebuilt.Find(ctx, registry, f, v)
					if !sameErr(err1, err2) || !sameRecords(f1, f2) {
						t.Fatalf("%s find %s=%s: live %v %d records, rebuilt %v %d records", registry, f, v, err1, len(f1), err2, len(f2))
					}
					for _, rec := range f1 {
						var m map[string]string
						if json.Unmarshal(rec.Data, &m) != nil || m[f] != v || rec.Deleted {
							t.Fatalf("%s find %s=%s returned %s %s", registry, f, v, rec.ID, rec.Data)
						}
					}
				}
			}
		}
	})
}

func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error()
}

func sameVersions(a, b []VersionInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Version != y.Version || x.Index != y.Index || x.Epoch != y.Epoch || x.Deleted != y.Deleted || !x.Time.Equal(y.Time) {
			return false
		}
	}
	return true
}

func sameRecords(a, b []*Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x == nil || y == nil {
			if x != y {
				return false
			}
			continue
		}
		if x.Registry != y.Registry || x.ID != y.ID || !bytes.Equal(x.Data, y.Data) || len(x.Attachments) != len(y.Attachments) ||
			!sameVersions([]VersionInfo{x.VersionInfo}, []VersionInfo{y.VersionInfo}) {
			return false
		}
	}
	return true
}

// TestRebuildRefusesDamagedLedger: Open fails, naming the entry or bundle,
// when a stored bundle is damaged or missing, whether the bundle is full
// (read ahead) or the partial one at the end; and it leaves no goroutine
// behind, nor when its context is cancelled.
func TestRebuildRefusesDamagedLedger(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	const n = 700 // two full bundles and a partial one
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("DR-%d", i)
		fmt.Fprintf(&in, `{"registry":"population","id":%q,"record":%s}`+"\n", id, person(id, "N"))
	}
	if _, err := fx.reg.Import(ctx, &in, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fx.log.WaitPublished(ctx, n); err != nil {
		t.Fatal(err)
	}
	_, cp := fx.log.Checkpoint()
	open := func(ctx context.Context) error {
		r, err := Open(ctx, Options{Charter: fx.c, Site: "home", Log: fx.log, Keys: seal.NewKeyring(fx.c.Guest.ID, fx.root)})
		if err == nil {
			r.Close()
		}
		return err
	}
	before := runtime.NumGoroutine()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := open(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a cancelled context: %v", err)
	}
	dir := fx.log.Dir()
	for _, c := range []struct {
		bundle uint64
		width  int
		damage func([]byte) []byte
		want   string
	}{
		{1, 0, func(b []byte) []byte { b[2] = 9; return b }, "ledger entry 256: entry version 9"},
		{1, 0, func(b []byte) []byte { b[2+ledger.EntryHeaderSize] = 7; return b }, "ledger entry 256: record entry: format 7"},
		{0, 0, func(b []byte) []byte { return b[:len(b)-3] }, "entry bundle 0"},
		{2, int(cp.Size % ledger.TileWidth), func(b []byte) []byte { b[2+1] = 0; return b }, "ledger entry 512: entry type"},
		{1, 0, nil, "entry bundle 1"},
	} {
		path := filepath.Join(dir, filepath.FromSlash(ledger.EntriesPath(c.bundle, c.width)))
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.damage == nil {
			os.Remove(path)
		} else {
			os.WriteFile(path, c.damage(bytes.Clone(orig)), 0o644)
		}
		err = open(ctx)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bundle %d damaged: %v, want an error naming %q", c.bundle, err, c.want)
		}
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := open(ctx); err != nil {
		t.Fatalf("repaired ledger: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines before the failed opens, %d after", before, g)
	}
}

// TestRebuildRegistryWithoutIndexFields: a registry that indexes no field
// (a connector's tables map to such registries) rebuilds after a restart;
// the rebuild once indexed an empty arena and panicked.
func TestRebuildRegistryWithoutIndexFields(t *testing.T) {
	fx := &fixture{dir: t.TempDir(), c: testCharter()}
	fx.c.Registries = append(fx.c.Registries, charter.Registry{Name: "plain", Sites: []string{"home"}, Sync: charter.SyncAsync})
	var err error
	if fx.root, err = seal.NewRootKey(); err != nil {
		t.Fatal(err)
	}
	fx.open(t)
	t.Cleanup(func() { fx.close(t) })
	ctx := context.Background()
	for i := range 50 {
		if _, err := fx.reg.Put(ctx, "plain", fmt.Sprintf("r%d", i), json.RawMessage(`{"a":1}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	fx.reopen(t)
	if n, err := fx.reg.Count("plain"); err != nil || n != 50 {
		t.Fatalf("after rebuild: %d records, %v", n, err)
	}
}
