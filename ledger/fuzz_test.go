package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Fuzz targets for everything that parses bytes a ledger reads from disk or
// from the network. Seed corpora live in testdata/fuzz/<target>/ as well as
// in the f.Add calls. Run one with:
//
//	go test -run '^$' -fuzz '^FuzzDecodeEntry$' -fuzztime 5s ./ledger/

func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []Entry{
		{Type: TypeRecord, Epoch: 1, Time: time.UnixMilli(1_700_000_000_000), Payload: []byte("sealed record")},
		{Type: TypeOrder, Epoch: 1 << 40, Time: time.UnixMilli(0)},
		{Type: 200, Epoch: 7, Time: time.UnixMilli(1 << 62), Payload: []byte{0}},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(bytes.Repeat([]byte{0xff}, EntryHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		if e.Type == 0 || len(b) > MaxEntrySize || len(b) < EntryHeaderSize {
			t.Fatalf("decoded %d bytes as type %d", len(b), e.Type)
		}
		if e.Size() != len(b) || entryEpoch(b) != e.Epoch {
			t.Fatalf("Size %d of %d bytes, epoch %d/%d", e.Size(), len(b), e.Epoch, entryEpoch(b))
		}
		out, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode of a decoded entry: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("decode→encode changed the bytes:\n%x\n%x", b, out)
		}
		_ = e.Type.String()
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	root := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, s := range []string{
		"example.com/log\n5\n" + root + "\nepoch 3\n",
		"example.com/log\n0\n" + root + "\nepoch 0\nextension line\nanother\n",
		"example.com/log\n18446744073709551615\n" + root + "\nepoch 18446744073709551615\n",
		"example.com/log\n05\n" + root + "\nepoch 3\n",
		"example.com/log\n5\n" + root + "\nepoch 3\nepoch 4\n",
		"example.com/log\n5\n" + root + "\n\n",
		"\n5\n" + root + "\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		out := c.Marshal()
		if !bytes.Equal(out, text) {
			t.Fatalf("ParseCheckpoint accepted %q, Marshal gives %q", text, out)
		}
		c2, err := ParseCheckpoint(out)
		if err != nil || c2.Origin != c.Origin || c2.Size != c.Size || c2.Root != c.Root || c2.Epoch != c.Epoch || !slices.Equal(c2.Extra, c.Extra) {
			t.Fatalf("re-parse: %+v, %v", c2, err)
		}
	})
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{
		"tile/0/x001/x234/067", "tile/0/005", "tile/entries/005.p/17", "tile/63/x018/x446/x744/x073/x709/x551/615.p/255",
		"tile/1/000", "tile/0/x000/005", "tile/00/005", "tile/0/005.p/0", "tile/0/005.p/256", "tile/entries/x1/000",
		"tile/0/x018/x446/x744/x073/x709/x551/616", "tile/0/005.p/5/6",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		level, index, width, err := ParseTilePath(p)
		if err != nil {
			return
		}
		if level < -1 || level > 63 || width < 0 || width >= TileWidth {
			t.Fatalf("ParseTilePath(%q) = %d, %d, %d", p, level, index, width)
		}
		var back string
		if level < 0 {
			back = EntriesPath(index, width)
		} else {
			back = TilePath(uint64(level), index, width)
		}
		if back != p {
			t.Fatalf("ParseTilePath(%q) = %d, %d, %d, which formats as %q", p, level, index, width, back)
		}
	})
}

// fuzzFrame encodes a write-ahead log frame, independently of walWriter.
func fuzzFrame(first uint64, entries [][]byte) []byte {
	var payload []byte
	for _, e := range entries {
		payload = binary.BigEndian.AppendUint16(payload, uint16(len(e)))
		payload = append(payload, e...)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint64(b, first)
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[4:8], frameCRC(b[:frameHeaderSize], b[frameHeaderSize:]))
	return b
}

// fuzzSplit cuts data into entries of lengths taken from cuts.
func fuzzSplit(data, cuts []byte) [][]byte {
	var out [][]byte
	for i := 0; len(data) > 0 || (i < len(cuts) && len(out) == 0); i++ {
		n := len(data)
		if i < len(cuts) {
			n = min(n, int(cuts[i]))
		}
		out = append(out, data[:n])
		data = data[n:]
	}
	if len(out) == 0 {
		out = [][]byte{{}} // the log never writes a frame without entries
	}
	return out
}

func FuzzWALFrame(f *testing.F) {
	f.Add(fuzzFrame(0, [][]byte{[]byte("entry one"), []byte("entry two")}), uint64(0), []byte{3, 1}, uint16(0))
	f.Add(fuzzFrame(500, [][]byte{{}}), uint64(500), []byte{0}, uint16(7))
	// Cut 8 bytes short: the frame's length runs past the end of the data.
	f.Add([]byte("entry oneentry two"), uint64(3), []byte{9}, uint16(30))
	f.Add(make([]byte, 40), uint64(1), []byte{}, uint16(3))
	f.Add([]byte{0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 1, 244, 7, 7, 7}, uint64(9), []byte{1, 2}, uint16(100))
	f.Fuzz(func(t *testing.T, b []byte, first uint64, cuts []byte, flip uint16) {
		// Whatever the bytes, parseFrame never panics and what it returns
		// lies wholly inside the frame it claims.
		checkParsed := func(b []byte) (uint64, [][]byte, int64, error) {
			fst, entries, n, err := parseFrame(b)
			if err != nil {
				if err == io.EOF && len(b) >= frameHeaderSize && binary.BigEndian.Uint32(b) != 0 {
					t.Fatalf("io.EOF for a frame header of non-zero length")
				}
				return fst, entries, n, err
			}
			if n < frameHeaderSize || n > int64(len(b)) {
				t.Fatalf("frame of %d bytes in %d", n, len(b))
			}
			var re []byte
			for _, e := range entries {
				if cap(e) != len(e) {
					t.Fatal("entry slice can be extended past its end")
				}
				re = binary.BigEndian.AppendUint16(re, uint16(len(e)))
				re = append(re, e...)
			}
			if !bytes.Equal(re, b[frameHeaderSize:n]) {
				t.Fatal("entries do not re-encode to the frame payload")
			}
			if binary.BigEndian.Uint32(b) != uint32(n-frameHeaderSize) || binary.BigEndian.Uint64(b[8:16]) != fst {
				t.Fatal("frame header disagrees with the parse")
			}
			return fst, entries, n, err
		}
		checkParsed(b)

		// A frame built from the input parses back exactly, followed by
		// the zeroes of a preallocated segment or by anything else.
		if len(b) > 4*MaxEntrySize {
			return
		}
		entries := fuzzSplit(b, cuts)
		frame := fuzzFrame(first, entries)
		withTail := append(bytes.Clone(frame), make([]byte, int(flip%64))...)
		fst, got, n, err := checkParsed(withTail)
		if err != nil || fst != first || n != int64(len(frame)) || len(got) != len(entries) {
			t.Fatalf("own frame: first %d, %d entries, %d bytes, %v", fst, len(got), n, err)
		}
		for i := range got {
			if !bytes.Equal(got[i], entries[i]) {
				t.Fatalf("entry %d differs", i)
			}
		}
		if _, _, _, err := parseFrame(withTail[n:]); err != io.EOF {
			t.Fatalf("zeroes after a frame: %v, want io.EOF", err)
		}
		// Truncated, it is an error, never a shorter frame.
		if cut := int(flip) % len(frame); cut >= frameHeaderSize || !allZero(frame[:cut]) {
			if _, _, _, err := checkParsed(frame[:cut]); err == nil || err == io.EOF && cut >= frameHeaderSize {
				t.Fatalf("frame cut to %d of %d bytes: %v", cut, len(frame), err)
			}
		}
		// One flipped bit covered by the checksum (checksum, first index,
		// payload) is always detected.
		if len(frame) > 4 {
			bit := int(flip) % ((len(frame) - 4) * 8)
			bad := bytes.Clone(frame)
			bad[4+bit/8] ^= 1 << (bit % 8)
			if _, _, _, err := checkParsed(bad); err == nil {
				t.Fatalf("bit %d flipped went unnoticed", 32+bit)
			}
		}
	})
}

func FuzzSplitBundle(f *testing.F) {
	var b []byte
	for _, e := range [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{7}, 300)} {
		b = appendBundleEntry(b, e)
	}
	f.Add(b)
	f.Add([]byte{0})
	f.Add([]byte{0, 5, 1, 2})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := splitBundle(b)
		if err != nil {
			return
		}
		var re []byte
		for _, e := range es {
			if len(e) > MaxEntrySize || cap(e) != len(e) {
				t.Fatalf("entry of %d bytes (cap %d)", len(e), cap(e))
			}
			re = appendBundleEntry(re, e)
		}
		if !bytes.Equal(re, b) {
			t.Fatal("split→join changed the bundle")
		}
	})
}

// fuzzKeys is a fixed log key and cosigner key, so that the corpus holds
// notes that verify.
func fuzzKeys(t testing.TB) (note.Signer, *Cosigner, note.Verifiers) {
	logKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	s, vkey, err := NewLogSigner("fuzz.example/log", logKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCosigner("fuzz.example/witness", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)), func() time.Time { return time.Unix(1_700_000_000, 0) })
	if err != nil {
		t.Fatal(err)
	}
	cv, err := ParseVerifierKey(c.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return s, c, note.VerifierList(v, cv)
}

// fuzzSignedTexts are the only checkpoint texts ever signed with the fuzz
// log key: no other text may open.
var fuzzSignedTexts = []Checkpoint{
	{Origin: "fuzz.example/log", Size: 5, Epoch: 2},
	{Origin: "fuzz.example/log", Size: 1 << 40, Epoch: 9, Extra: []string{"extension"}},
}

func FuzzOpenCheckpoint(f *testing.F) {
	s, c, vs := fuzzKeys(f)
	for _, cp := range fuzzSignedTexts {
		signed, err := SignCheckpoint(cp, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(signed)
		cosigned, err := Cosign(signed, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cosigned)
		// Only a cosignature: must not open as a log checkpoint.
		only, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(only)
		// A known cosigner's signature that does not verify.
		bad := bytes.Clone(cosigned)
		bad[len(bad)-5] ^= 1
		f.Add(bad)
	}
	f.Add([]byte("fuzz.example/log\n1\nAAAA\n\n\u2014 fuzz.example/log AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, signed []byte) {
		cp, n, err := OpenCheckpoint(signed, "fuzz.example/log", vs)
		if err != nil {
			return
		}
		ok := false
		for _, want := range fuzzSignedTexts {
			if string(want.Marshal()) == n.Text {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("opened a checkpoint text that was never signed: %q", n.Text)
		}
		p, err := ParseCheckpoint([]byte(n.Text))
		if err != nil || p.Size != cp.Size || p.Root != cp.Root || p.Origin != "fuzz.example/log" {
			t.Fatalf("opened checkpoint %+v, text parses as %+v, %v", cp, p, err)
		}
		if len(n.Sigs) == 0 {
			t.Fatal("opened with no verified signature")
		}
		// A cosignature alone (the seeds hold one) is not the log's
		// checkpoint: a verified signature by the log key must be there.
		logSigned := false
		for _, sg := range n.Sigs {
			logSigned = logSigned || (sg.Name == "fuzz.example/log" && sg.Hash == s.KeyHash())
		}
		if !logSigned {
			t.Fatalf("opened a checkpoint with no log signature, only %d cosignature(s)", len(n.Sigs))
		}
		if _, err := CosignatureTime(n, mustCosignatureVerifier(t, c)); err == nil {
			found := false
			for _, sg := range n.Sigs {
				found = found || sg.Name == c.Name()
			}
			if !found {
				t.Fatal("cosignature time reported for an unverified cosignature")
			}
		}
	})
}

func mustCosignatureVerifier(t testing.TB, c *Cosigner) *CosignatureVerifier {
	v, err := ParseVerifierKey(c.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cv, ok := v.(*CosignatureVerifier)
	if !ok {
		t.Fatal(errors.New("not a cosignature verifier"))
	}
	return cv
}
