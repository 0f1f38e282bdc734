package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
)

// backends are the raw backends the Prefixed tests run over: the real fs
// backend, and the in-memory one the property tests use.
func backends(t *testing.T) map[string]func() store.Backend {
	return map[string]func() store.Backend{
		"fs": func() store.Backend {
			be, err := fs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return be
		},
		"mem": func() store.Backend { return newMemBackend() },
	}
}

func listAll(t testing.TB, be store.Backend, prefix string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	if err := be.List(context.Background(), prefix, func(name string, size int64) error {
		if _, dup := got[name]; dup {
			t.Errorf("list %q: %s twice", prefix, name)
		}
		got[name] = size
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return got
}

func keys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func readObject(be store.Backend, name string) ([]byte, error) {
	rc, err := be.Load(context.Background(), name, 0, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestPrefixedMapping pins where a view's objects land in the backend
// underneath, including views of views.
func TestPrefixedMapping(t *testing.T) {
	for _, tc := range []struct {
		view     func(store.Backend) store.Backend
		name     string
		underlay string
	}{
		{func(be store.Backend) store.Backend { return store.Prefixed(be, "registries/population/") },
			"data/00ff", "registries/population/data/00ff"},
		{func(be store.Backend) store.Backend { return store.Prefixed(be, "a/") },
			"index/x", "a/index/x"},
		{func(be store.Backend) store.Backend {
			return store.Prefixed(store.Prefixed(be, "guest-ua/"), "registries/land/")
		}, "data/ab", "guest-ua/registries/land/data/ab"},
	} {
		for bname, newBE := range backends(t) {
			t.Run(bname+"/"+tc.underlay, func(t *testing.T) {
				ctx := context.Background()
				be := newBE()
				v := tc.view(be)
				if err := v.Save(ctx, tc.name, strings.NewReader("payload"), 7); err != nil {
					t.Fatal(err)
				}
				if got := keys(listAll(t, be, "")); fmt.Sprint(got) != fmt.Sprint([]string{tc.underlay}) {
					t.Fatalf("backend holds %v, want [%s]", got, tc.underlay)
				}
				if got := keys(listAll(t, v, "")); fmt.Sprint(got) != fmt.Sprint([]string{tc.name}) {
					t.Fatalf("view lists %v, want [%s]", got, tc.name)
				}
				if b, err := readObject(be, tc.underlay); err != nil || string(b) != "payload" {
					t.Fatalf("load %s underneath: %q, %v", tc.underlay, b, err)
				}
				if n, err := v.Stat(ctx, tc.name); err != nil || n != 7 {
					t.Fatalf("stat through the view: %d, %v", n, err)
				}
				if err := v.Remove(ctx, tc.name); err != nil {
					t.Fatal(err)
				}
				if n := len(listAll(t, be, "")); n != 0 {
					t.Fatalf("after remove through the view, %d objects remain", n)
				}
			})
		}
	}
}

// TestPrefixedInvalid: a bad prefix makes every call fail, naming the
// prefix, and nothing reaches the backend. Good prefixes work.
func TestPrefixedInvalid(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"registries/population/", true},
		{"a/", true},
		{"x.y-z_1/", true},
		{"", false},
		{"/", false},
		{"registries/population", false}, // no trailing slash: "a" would see "ab"
		{"/registries/", false},
		{"registries//", false},
		{"a/../", false},
		{"../", false},
		{".hidden/", false},
		{"a b/", false},
		{"a//b/", false},
		{strings.Repeat("a", 600) + "/", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.prefix), func(t *testing.T) {
			ctx := context.Background()
			be := newMemBackend()
			v := store.Prefixed(be, tc.prefix)
			errs := map[string]error{}
			errs["save"] = v.Save(ctx, "data/x", strings.NewReader("x"), 1)
			_, errs["stat"] = v.Stat(ctx, "data/x")
			rc, err := v.Load(ctx, "data/x", 0, 0)
			if err == nil {
				rc.Close()
			}
			errs["load"] = err
			errs["list"] = v.List(ctx, "", func(string, int64) error { return nil })
			errs["remove"] = v.Remove(ctx, "data/x")
			for op, err := range errs {
				if tc.ok && err != nil {
					t.Errorf("%s with a valid prefix: %v", op, err)
				}
				if !tc.ok && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.prefix))) {
					t.Errorf("%s with an invalid prefix: %v, want an error naming the prefix", op, err)
				}
			}
			if n := len(listAll(t, be, "")); !tc.ok && n != 0 {
				t.Errorf("an invalid prefix stored %d objects", n)
			}
		})
	}
}

// TestPrefixedNames: a view refuses the names a Backend refuses, before
// they reach the backend, and says which name the caller gave.
func TestPrefixedNames(t *testing.T) {
	ctx := context.Background()
	be := newMemBackend()
	v := store.Prefixed(be, "registries/population/")
	for _, name := range []string{"", "/abs", "a//b", "../escape", "data/../x", "data/.hidden", "a b", "trailing/"} {
		err := v.Save(ctx, name, strings.NewReader(""), 0)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("invalid object name %q", name)) {
			t.Errorf("save %q: %v, want an error naming %q", name, err, name)
		}
		_, err = v.Stat(ctx, name)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("stat %q: %v", name, err)
		}
	}
	if n := len(listAll(t, be, "")); n != 0 {
		t.Errorf("%d objects stored", n)
	}
}

// TestPrefixedIsolation: views over one backend, including one whose
// prefix is a string prefix of another's ("registries/a/" and
// "registries/ab/"), do not see, read or remove each other's objects.
func TestPrefixedIsolation(t *testing.T) {
	prefixes := []string{"registries/a/", "registries/ab/", "registries/b/"}
	for bname, newBE := range backends(t) {
		t.Run(bname, func(t *testing.T) {
			testIsolation(t, newBE(), prefixes)
		})
	}
}

func testIsolation(t *testing.T, be store.Backend, prefixes []string) {
	ctx := context.Background()
	views := map[string]store.Backend{}
	for _, p := range prefixes {
		views[p] = store.Prefixed(be, p)
		// The same names in every view, plus one only this view has.
		for _, name := range []string{"data/0000", "index/1111", "data/only-" + strings.NewReplacer("/", "-").Replace(p)} {
			content := []byte(p + name)
			if err := views[p].Save(ctx, name, bytes.NewReader(content), int64(len(content))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range prefixes {
		v := views[p]
		only := "data/only-" + strings.NewReplacer("/", "-").Replace(p)
		want := []string{"data/0000", only, "index/1111"}
		if got := keys(listAll(t, v, "")); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("view %s lists %v, want %v", p, got, want)
		}
		if got := keys(listAll(t, v, "data/")); fmt.Sprint(got) != fmt.Sprint(want[:2]) {
			t.Errorf("view %s lists data/ as %v, want %v", p, got, want[:2])
		}
		for _, name := range want {
			if b, err := readObject(v, name); err != nil || string(b) != p+name {
				t.Errorf("view %s reads %s as %q, %v: not its own", p, name, b, err)
			}
		}
		for _, q := range prefixes {
			if q == p {
				continue
			}
			other := "data/only-" + strings.NewReplacer("/", "-").Replace(q)
			if _, err := v.Stat(ctx, other); !errors.Is(err, iofs.ErrNotExist) {
				t.Errorf("view %s stats %s of view %s: %v, want fs.ErrNotExist", p, other, q, err)
			}
		}
	}
	// A remove in one view leaves the same name in the others.
	if err := views[prefixes[0]].Remove(ctx, "data/0000"); err != nil {
		t.Fatal(err)
	}
	for _, p := range prefixes[1:] {
		if _, err := views[p].Stat(ctx, "data/0000"); err != nil {
			t.Errorf("remove in %s removed %s's object: %v", prefixes[0], p, err)
		}
	}
	if n := len(listAll(t, be, "")); n != 3*len(prefixes)-1 {
		t.Errorf("backend holds %d objects, want %d", n, 3*len(prefixes)-1)
	}
}

// TestPrefixedModel: random saves and removes through three views agree
// with a model in which each view is its own map, and the backend holds
// exactly the union of the views' objects under their prefixes.
func TestPrefixedModel(t *testing.T) {
	prefixes := []string{"r/a/", "r/ab/", "s/"}
	names := []string{"data/00", "data/01", "data/0", "index/00", "index/x/y", "a", "r/a/data/00"}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		be := newMemBackend()
		model := map[string]map[string]string{}
		for _, p := range prefixes {
			model[p] = map[string]string{}
		}
		for range rapid.IntRange(1, 40).Draw(rt, "ops") {
			p := rapid.SampledFrom(prefixes).Draw(rt, "view")
			v := store.Prefixed(be, p)
			name := rapid.SampledFrom(names).Draw(rt, "name")
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0, 1:
				content := rapid.StringN(0, 20, -1).Draw(rt, "content")
				if err := v.Save(ctx, name, strings.NewReader(content), int64(len(content))); err != nil {
					rt.Fatal(err)
				}
				model[p][name] = content
			case 2:
				if err := v.Remove(ctx, name); err != nil {
					rt.Fatal(err)
				}
				delete(model[p], name)
			case 3:
				b, err := readObject(v, name)
				want, ok := model[p][name]
				if ok != (err == nil) || string(b) != want {
					rt.Fatalf("view %s load %s: %q, %v; model has %q (%v)", p, name, b, err, want, ok)
				}
			}
			lp := rapid.SampledFrom([]string{"", "data/", "data/0", "index/", "r/"}).Draw(rt, "list prefix")
			got := map[string]string{}
			if err := v.List(ctx, lp, func(n string, size int64) error {
				got[n] = fmt.Sprint(size)
				return nil
			}); err != nil {
				rt.Fatal(err)
			}
			want := map[string]string{}
			for n, c := range model[p] {
				if strings.HasPrefix(n, lp) {
					want[n] = fmt.Sprint(len(c))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				rt.Fatalf("view %s list %q = %v, model %v", p, lp, got, want)
			}
		}
		union := map[string]int64{}
		for p, objs := range model {
			for n, c := range objs {
				union[p+n] = int64(len(c))
			}
		}
		if got := listAll(t, be, ""); fmt.Sprint(got) != fmt.Sprint(union) {
			rt.Fatalf("backend holds %v, model %v", got, union)
		}
	})
}

// TestPrefixedStores: two registries' Stores over one backend share
// nothing; one's blobs are not found, listed or counted by the other.
func TestPrefixedStores(t *testing.T) {
	ctx := context.Background()
	be, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sl := newTestSealer(t, 1)
	open := func(prefix string) *store.Store {
		s, err := store.Open(ctx, store.Prefixed(be, prefix), store.Options{Chunking: testChunking(t), PackSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pop, land := open("registries/population/"), open("registries/land/")
	popData, landData := content(1, 900<<10, 0), content(2, 700<<10, 1)
	popRef, landRef := put(t, pop, sl, popData), put(t, land, sl, landData)
	for _, s := range []*store.Store{pop, land} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pop, land = open("registries/population/"), open("registries/land/")
	defer pop.Close()
	defer land.Close()
	mustGet(t, pop, sl, popRef, popData)
	mustGet(t, land, sl, landRef, landData)
	for _, tc := range []struct {
		s     *store.Store
		other store.Ref
	}{{pop, landRef}, {land, popRef}} {
		for _, id := range tc.other.Chunks {
			if tc.s.Has(id) {
				t.Errorf("a registry's store has the other's chunk %x", id)
			}
		}
		if _, err := get(tc.s, sl, tc.other); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("get of the other registry's blob: %v, want fs.ErrNotExist", err)
		}
	}
	if a, b := pop.Packs(), land.Packs(); len(a) == 0 || len(b) == 0 || a[0].ID == b[0].ID {
		t.Errorf("pack lists: %d and %d packs", len(a), len(b))
	}
	var total int
	for _, s := range []*store.Store{pop, land} {
		total += len(s.Packs())
	}
	if n := len(listAll(t, be, "")); n != total+2 {
		t.Errorf("backend holds %d objects; the two stores account for %d packs and 2 index objects", n, total)
	}
}
