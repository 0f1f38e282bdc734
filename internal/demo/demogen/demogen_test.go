package demogen

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
)

func jsonl(t testing.TB, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteJSONL(context.Background(), opts, &buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parse decodes JSON Lines into Lines, the record as a map.
type parsed struct {
	Registry    string            `json:"registry"`
	ID          string            `json:"id"`
	Record      map[string]any    `json:"record"`
	Attachments map[string]string `json:"attachments"`
}

func parse(t testing.TB, data []byte) []parsed {
	t.Helper()
	var out []parsed
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var p parsed
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("line %d: %v: %s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	a := jsonl(t, Options{Persons: 3000, Seed: 42})
	for _, workers := range []int{1, 3, 8} {
		if b := jsonl(t, Options{Persons: 3000, Seed: 42, Workers: workers}); !bytes.Equal(a, b) {
			t.Fatalf("workers=%d: output differs from the default run", workers)
		}
	}
	b := jsonl(t, Options{Persons: 3000, Seed: 43})
	if bytes.Equal(a, b) {
		t.Fatal("seeds 42 and 43 gave the same output")
	}
	// A smaller population is a prefix of a larger one, person by person.
	small := parse(t, jsonl(t, Options{Persons: 100, Seed: 42}))
	large := parse(t, a)
	ls := 0
	for ; large[ls].Registry == RegLegalActs; ls++ {
	}
	ss := 0
	for ; small[ss].Registry == RegLegalActs; ss++ {
	}
	for i := range small[ss:] {
		if small[ss+i].ID != large[ls+i].ID {
			t.Fatalf("person-ordered record %d: %s vs %s", i, small[ss+i].ID, large[ls+i].ID)
		}
	}
}

func TestGenerateMatchesJSONL(t *testing.T) {
	opts := Options{Persons: 1500, Seed: 9}
	var buf bytes.Buffer
	err := Generate(context.Background(), opts, func(l Line) error {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := jsonl(t, opts); !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("json.Marshal of Generate's Lines differs from WriteJSONL's output")
	}
}

func TestIndexFieldsOrderAndUniqueIDs(t *testing.T) {
	lines := parse(t, jsonl(t, Options{Persons: 5000, Seed: 1}))
	ids := map[string]map[string]bool{}
	persons := map[string]bool{}
	lastPerson := ""
	seenPerson := false
	for n, l := range lines {
		fields := IndexFields(l.Registry)
		if fields == nil {
			t.Fatalf("line %d: unknown registry %q", n, l.Registry)
		}
		for _, f := range fields {
			v, ok := l.Record[f].(string)
			if !ok || v == "" {
				t.Fatalf("line %d (%s): index field %s missing or not a string: %v", n, l.Registry, f, l.Record)
			}
		}
		if l.ID != l.Record[fields[0]] {
			t.Fatalf("line %d: id %q is not the record's %s", n, l.ID, fields[0])
		}
		if ids[l.Registry] == nil {
			ids[l.Registry] = map[string]bool{}
		}
		if ids[l.Registry][l.ID] {
			t.Fatalf("line %d: duplicate %s id %s", n, l.Registry, l.ID)
		}
		ids[l.Registry][l.ID] = true

		switch l.Registry {
		case RegLegalActs:
			if seenPerson {
				t.Fatalf("line %d: legal act after the first person", n)
			}
		case RegPopulation:
			seenPerson = true
			if !ValidNationalID(l.ID) {
				t.Fatalf("line %d: invalid national id %s", n, l.ID)
			}
			if size := len(mustMarshal(t, l.Record)); size < 400 || size > 700 {
				t.Errorf("line %d: population record of %d bytes, want about 500", n, size)
			}
			persons[l.ID] = true
			lastPerson = l.ID
		case RegIdentity:
			if l.Record["national_id"] != lastPerson {
				t.Fatalf("line %d: document of %v after person %s", n, l.Record["national_id"], lastPerson)
			}
		case RegLand, RegBusiness:
			if l.Record["owner_id"] != lastPerson {
				t.Fatalf("line %d: %s owned by %v after person %s", n, l.Registry, l.Record["owner_id"], lastPerson)
			}
		}
	}
	if len(persons) != 5000 {
		t.Fatalf("%d persons, want 5000", len(persons))
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCountsScale(t *testing.T) {
	for _, persons := range []int{1000, 20000} {
		got := map[string]int{}
		err := Generate(context.Background(), Options{Persons: persons, Seed: 5}, func(l Line) error {
			got[l.Registry]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for reg, want := range Counts(persons) {
			tol := 0.15 * want
			if persons >= 20000 {
				tol = 0.06 * want
			}
			if reg == RegPopulation || reg == RegLegalActs {
				tol = 0
			}
			if math.Abs(float64(got[reg])-want) > tol {
				t.Errorf("persons=%d: %d %s records, want %.0f ± %.0f", persons, got[reg], reg, want, tol)
			}
		}
		t.Logf("persons=%d: %v", persons, got)
	}
}

func TestCitizenKey(t *testing.T) {
	const seed = 77
	i := 0
	err := Generate(context.Background(), Options{Persons: 64, Seed: seed}, func(l Line) error {
		if l.Registry != RegPopulation {
			return nil
		}
		var rec struct {
			NationalID string `json:"national_id"`
			Key        string `json:"eid_public_key"`
		}
		if err := json.Unmarshal(l.Record, &rec); err != nil {
			return err
		}
		if want := NationalID(seed, i); rec.NationalID != want {
			t.Errorf("person %d: national id %s, NationalID gives %s", i, rec.NationalID, want)
		}
		pub, err := base64.StdEncoding.DecodeString(rec.Key)
		if err != nil {
			return err
		}
		priv := CitizenKey(seed, i)
		if !bytes.Equal(pub, priv.Public().(ed25519.PublicKey)) {
			t.Errorf("person %d: eid_public_key is not CitizenKey's public half", i)
		}
		msg := []byte("login " + rec.NationalID)
		if !ed25519.Verify(pub, msg, ed25519.Sign(priv, msg)) {
			t.Errorf("person %d: signature does not verify", i)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != 64 {
		t.Fatalf("%d population records, want 64", i)
	}
	if bytes.Equal(CitizenKey(1, 0), CitizenKey(2, 0)) || bytes.Equal(CitizenKey(1, 0), CitizenKey(1, 1)) {
		t.Fatal("citizen keys do not depend on seed and index")
	}
}

func TestDeeds(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Persons: 200, Seed: 3, Deeds: true, DeedDir: dir}
	lines := parse(t, jsonl(t, opts))
	// zstd (the store's compressor) packs these scans about 2×; flate, in
	// the standard library, packs them about as well.
	var zbuf bytes.Buffer
	enc, err := flate.NewWriter(&zbuf, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	parcels, copies, raw, packed := 0, 0, 0, 0
	for _, l := range lines {
		if l.Registry != RegLand {
			if l.Attachments != nil {
				t.Fatalf("%s %s has attachments", l.Registry, l.ID)
			}
			continue
		}
		parcels++
		path := l.Attachments["deed"]
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("parcel %s: %v", l.ID, err)
		}
		if len(data) < 100<<10 || len(data) > 5<<20 {
			t.Errorf("parcel %s: deed of %d bytes, want 100 KiB – 5 MiB", l.ID, len(data))
		}
		head := string(data[:1024])
		if !strings.Contains(head, l.ID) || !strings.Contains(head, l.Record["owner_id"].(string)) || !strings.HasPrefix(head, "DEMO REPUBLIC\n") {
			t.Errorf("parcel %s: deed header lacks parcel or owner: %q", l.ID, head[:200])
		}
		if cp, ok := l.Attachments["deed-copy"]; ok {
			copies++
			dup, err := os.ReadFile(cp)
			if err != nil {
				t.Fatal(err)
			}
			if cp == path || !bytes.Equal(dup, data) {
				t.Errorf("parcel %s: the copy is not a separate identical file", l.ID)
			}
		}
		raw += len(data)
		zbuf.Reset()
		enc.Reset(&zbuf)
		if _, err := enc.Write(data); err != nil || enc.Close() != nil {
			t.Fatal(err)
		}
		packed += zbuf.Len()
	}
	if parcels < 40 || copies == 0 || copies > parcels/5 {
		t.Fatalf("%d parcels with %d notarised copies", parcels, copies)
	}
	ratio := float64(raw) / float64(packed)
	if ratio < 1.5 || ratio > 3 {
		t.Errorf("compression ratio %.2f, want 1.5–3", ratio)
	}
	t.Logf("%d deeds (%d copies), %.1f MB, flate ratio %.2f", parcels, copies, float64(raw)/1e6, ratio)

	// Regenerating gives the same deeds.
	again := t.TempDir()
	opts.DeedDir = again
	var first string
	for _, l := range lines {
		if l.Registry == RegLand {
			first = l.Attachments["deed"]
			break
		}
	}
	parse(t, jsonl(t, opts))
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(strings.Replace(first, dir, again, 1))
	if !bytes.Equal(a, b) {
		t.Fatal("deeds differ between runs")
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "Dvořák & Söhne <b>", "quote\" back\\slash", "tab\tnl\ncr\r\x00\x1f\x7f",
		"bad \xff utf8 \xc3", "line\u2028para\u2029", "emoji 🏛️", "O'Brien"} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestNationalID(t *testing.T) {
	id := NationalID(1, 12345)
	if !ValidNationalID(id) {
		t.Fatalf("%s is not valid", id)
	}
	bad := []byte(id)
	bad[7] = '0' + (bad[7]-'0'+1)%10
	for _, s := range []string{string(bad), "DR-123", "XX-" + id[3:], id + "0"} {
		if ValidNationalID(s) {
			t.Errorf("%s accepted", s)
		}
	}
}

func TestOptionsAndErrors(t *testing.T) {
	ctx := context.Background()
	if err := WriteJSONL(ctx, Options{Deeds: true}, io.Discard, nil); err == nil {
		t.Error("deeds without a directory accepted")
	}
	if err := WriteJSONL(ctx, Options{Persons: -1}, io.Discard, nil); err == nil {
		t.Error("negative persons accepted")
	}
	n := 0
	if err := Generate(ctx, Options{}, func(l Line) error {
		if l.Registry == RegPopulation {
			n++
		}
		return nil
	}); err != nil || n != DefaultPersons {
		t.Errorf("default run: %d persons, %v", n, err)
	}

	stop := errors.New("stop")
	seen := 0
	err := Generate(ctx, Options{Persons: 100000, Seed: 1}, func(l Line) error {
		if seen++; seen == 5000 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 5000 {
		t.Errorf("emit error: got %v after %d lines", err, seen)
	}

	cctx, cancel := context.WithCancel(ctx)
	var last, total int
	err = WriteJSONL(cctx, Options{Persons: 100000, Seed: 1}, io.Discard, func(done, tot int) {
		last, total = done, tot
		if done >= 2000 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || last >= total {
		t.Errorf("cancelled run: %v, progress %d/%d", err, last, total)
	}

	var calls []int
	if err := WriteJSONL(ctx, Options{Persons: 1000}, io.Discard, func(done, tot int) {
		calls = append(calls, done)
		if tot != 1000 {
			t.Errorf("total %d", tot)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 || calls[len(calls)-1] != 1000 {
		t.Errorf("progress calls %v", calls)
	}
}

func BenchmarkWriteJSONL(b *testing.B) {
	const persons = 20000
	var records, bytesOut int
	for b.Loop() {
		cw := &countingWriter{}
		if err := WriteJSONL(context.Background(), Options{Persons: persons, Seed: 1}, cw, nil); err != nil {
			b.Fatal(err)
		}
		records += cw.lines
		bytesOut += cw.n
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(persons*b.N)/sec, "persons/s")
	b.ReportMetric(float64(records)/sec, "records/s")
	b.ReportMetric(float64(bytesOut)/sec/1e6, "MB/s")
}

// BenchmarkCitizenKey is the floor of the population rate: one Ed25519
// key derivation (a scalar base multiplication) per citizen.
func BenchmarkCitizenKey(b *testing.B) {
	i := 0
	for b.Loop() {
		CitizenKey(1, i)
		i++
	}
}

type countingWriter struct{ n, lines int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	w.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}
