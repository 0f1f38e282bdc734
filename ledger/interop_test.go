package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// The interop test writes a ledger with the ledger package and reads it back
// with nothing from that package: its own C2SP path formatting, raw files,
// x/mod's note package and transparency-dev/merkle, as a third-party tlog
// client would.

const interopOrigin = "interop.test.example/ledger"

// c2spIndex formats a tile index as C2SP tlog-tiles says: groups of three
// digits, every group but the last prefixed with "x".
func c2spIndex(n uint64) string {
	var groups []string
	for {
		groups = append([]string{fmt.Sprintf("%03d", n%1000)}, groups...)
		n /= 1000
		if n == 0 {
			break
		}
	}
	for i := 0; i < len(groups)-1; i++ {
		groups[i] = "x" + groups[i]
	}
	return strings.Join(groups, "/")
}

func c2spTile(level int, n uint64, width int) string {
	p := "tile/" + strconv.Itoa(level) + "/" + c2spIndex(n)
	if width < 256 {
		p += ".p/" + strconv.Itoa(width)
	}
	return p
}

func c2spBundle(n uint64, width int) string {
	p := "tile/entries/" + c2spIndex(n)
	if width < 256 {
		p += ".p/" + strconv.Itoa(width)
	}
	return p
}

func TestC2SPIndexFormat(t *testing.T) {
	for n, want := range map[uint64]string{1234067: "x001/x234/067", 5: "005", 0: "000", 1000: "x001/000", 999999: "x999/999"} {
		if got := c2spIndex(n); got != want {
			t.Errorf("c2spIndex(%d) = %q, want %q", n, got, want)
		}
		if got := ledger.TilePath(0, n, 0); got != "tile/0/"+want {
			t.Errorf("ledger.TilePath(0, %d, 0) = %q", n, got)
		}
	}
}

// rawLedger reads a ledger directory with plain file reads.
type rawLedger struct {
	t     *testing.T
	dir   string
	size  uint64
	tiles map[string][]byte
}

func (r *rawLedger) read(rel string) []byte {
	r.t.Helper()
	if b, ok := r.tiles[rel]; ok {
		return b
	}
	b, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(rel)))
	if err != nil {
		r.t.Fatalf("read %s: %v", rel, err)
	}
	r.tiles[rel] = b
	return b
}

// tileFor reads the tile at a tile level holding the node with the given
// index, as a tree of r.size covers it: the full tile, or the partial one of
// the published size.
func (r *rawLedger) tileFor(level int, index uint64) []byte {
	n := r.size >> (8 * level) // nodes at this level
	tile := index / 256
	w := 256
	if (tile+1)*256 > n {
		w = int(n - tile*256)
	}
	b := r.read(c2spTile(level, tile, w))
	if len(b) != 32*w {
		r.t.Fatalf("tile %s holds %d bytes, want %d", c2spTile(level, tile, w), len(b), 32*w)
	}
	return b
}

// node returns the hash of a complete tree node, from the tiles alone.
func (r *rawLedger) node(level uint, index uint64) []byte {
	if level%8 == 0 {
		b := r.tileFor(int(level/8), index)
		off := (index % 256) * 32
		return b[off : off+32]
	}
	return rfc6962.DefaultHasher.HashChildren(r.node(level-1, 2*index), r.node(level-1, 2*index+1))
}

type rawCheckpoint struct {
	text   string
	origin string
	size   uint64
	root   []byte
	epoch  uint64
}

func openRawCheckpoint(t *testing.T, signed []byte, vkey string) rawCheckpoint {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open of the raw checkpoint: %v", err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != interopOrigin {
		t.Fatalf("checkpoint signatures %+v", n.Sigs)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 4 {
		t.Fatalf("checkpoint has %d lines: %q", len(lines), n.Text)
	}
	c := rawCheckpoint{text: n.Text, origin: lines[0]}
	if c.size, err = strconv.ParseUint(lines[1], 10, 64); err != nil || strconv.FormatUint(c.size, 10) != lines[1] {
		t.Fatalf("checkpoint size line %q", lines[1])
	}
	if c.root, err = base64.StdEncoding.DecodeString(lines[2]); err != nil || len(c.root) != 32 {
		t.Fatalf("checkpoint root line %q", lines[2])
	}
	ep, ok := strings.CutPrefix(lines[3], "epoch ")
	if !ok {
		t.Fatalf("checkpoint line 4 %q is not the epoch", lines[3])
	}
	if c.epoch, err = strconv.ParseUint(ep, 10, 64); err != nil {
		t.Fatalf("checkpoint epoch line %q", lines[3])
	}
	return c
}

func TestInteropRawRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, vkey, err := ledger.NewLogSigner(interopOrigin, priv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, dir, ledger.Options{Origin: interopOrigin, Signer: signer, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Past one full level-1 tile (65,536 entries) and into a partial one.
	const total = 65536 + 256*3 + 77
	r := mrand.New(mrand.NewPCG(3, 4))
	written := make([][]byte, 0, total)
	var epoch uint64 = 1
	for len(written) < total {
		n := min(1+r.IntN(2000), total-len(written))
		if r.IntN(10) == 0 {
			epoch++
		}
		es := make([]ledger.Entry, n)
		for i := range es {
			p := make([]byte, r.IntN(200))
			for j := range p {
				p[j] = byte(r.Uint32())
			}
			es[i] = ledger.Entry{Type: ledger.Type(1 + r.IntN(7)), Epoch: epoch, Time: time.UnixMilli(1_750_000_000_000 + int64(len(written)+i)), Payload: p}
		}
		first, err := l.AppendBatch(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
		if first != uint64(len(written)) {
			t.Fatalf("batch at %d, want %d", first, len(written))
		}
		for _, e := range es {
			b, _ := e.MarshalBinary()
			written = append(written, b)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	signed, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp := openRawCheckpoint(t, signed, vkey)
	if cp.origin != interopOrigin || cp.size != total || cp.epoch != epoch {
		t.Fatalf("checkpoint %q: want origin %s, size %d, epoch %d", cp.text, interopOrigin, total, epoch)
	}
	raw := &rawLedger{t: t, dir: dir, size: cp.size, tiles: map[string][]byte{}}

	// Entries from the raw bundles, hashed with the RFC 6962 hasher into a
	// compact range, keeping the level-0 and level-8 nodes (the hashes the
	// level-0 and level-1 tiles must hold).
	var leaves, level8 [][]byte
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	visit := func(id compact.NodeID, h []byte) {
		switch id.Level {
		case 0:
			leaves = append(leaves, h)
		case 8:
			level8 = append(level8, h)
		}
	}
	for b := uint64(0); b*256 < cp.size; b++ {
		w := int(min(256, cp.size-b*256))
		data := raw.read(c2spBundle(b, w))
		var n int
		for off := 0; off < len(data); n++ {
			if len(data)-off < 2 {
				t.Fatalf("bundle %d: truncated length", b)
			}
			l := int(binary.BigEndian.Uint16(data[off:]))
			off += 2
			if off+l > len(data) {
				t.Fatalf("bundle %d: entry %d runs past the end", b, n)
			}
			e := data[off : off+l]
			off += l
			idx := b*256 + uint64(n)
			if !bytes.Equal(e, written[idx]) {
				t.Fatalf("entry %d in the bundle differs from the one appended", idx)
			}
			if e[0] != 1 || e[1] == 0 || binary.BigEndian.Uint64(e[2:10]) > cp.epoch {
				t.Fatalf("entry %d: header %x", idx, e[:18])
			}
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), visit); err != nil {
				t.Fatal(err)
			}
		}
		if n != w {
			t.Fatalf("bundle %d holds %d entries, want %d", b, n, w)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, cp.root) {
		t.Fatalf("root of the raw entries %x, checkpoint says %x", root, cp.root)
	}

	// Every full level-0 and level-1 tile, and the partial ones at the
	// checkpoint size, hold exactly the hashes computed here.
	checkLevel := func(level int, hashes [][]byte) int {
		n := 0
		for tile := uint64(0); tile*256 < uint64(len(hashes)); tile++ {
			end := min(uint64(len(hashes)), (tile+1)*256)
			w := int(end - tile*256)
			if got, want := raw.read(c2spTile(level, tile, w)), bytes.Join(hashes[tile*256:end], nil); !bytes.Equal(got, want) {
				t.Fatalf("tile %s differs from the hashes of the raw entries", c2spTile(level, tile, w))
			}
			n++
		}
		return n
	}
	if uint64(len(leaves)) != cp.size || len(level8) != int(cp.size/256) {
		t.Fatalf("%d leaves and %d level-8 nodes for size %d", len(leaves), len(level8), cp.size)
	}
	if n := checkLevel(0, leaves); n != int((cp.size+255)/256) {
		t.Fatalf("%d level-0 tiles", n)
	}
	if n := checkLevel(1, level8); n != 2 {
		t.Fatalf("%d level-1 tiles, want one full and one partial", n)
	}
	// The level-2 tile is a partial of width 1: the root of level-1 tile 0.
	l1 := raw.read(c2spTile(1, 0, 256))
	var l1hashes [][]byte
	for i := 0; i < 256; i++ {
		l1hashes = append(l1hashes, l1[32*i:32*i+32])
	}
	r1 := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, h := range leaves[:65536] {
		r1.Append(h, nil)
	}
	want2, _ := r1.GetRootHash(nil)
	if got := raw.read(c2spTile(2, 0, 1)); !bytes.Equal(got, want2) {
		t.Fatalf("tile/2/000.p/1 is not the root of the first 65,536 entries")
	}

	// Inclusion proofs built from the raw tiles verify.
	for _, idx := range []uint64{0, 1, 255, 256, 65535, 65536, cp.size - 1, cp.size - 78, uint64(r.IntN(int(cp.size)))} {
		nodes, err := proof.Inclusion(idx, cp.size)
		if err != nil {
			t.Fatal(err)
		}
		hs := make([][]byte, len(nodes.IDs))
		for i, id := range nodes.IDs {
			hs[i] = bytes.Clone(raw.node(id.Level, id.Index))
		}
		prf, err := nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
		if err != nil {
			t.Fatal(err)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(written[idx])
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.size, leaf, prf, cp.root); err != nil {
			t.Fatalf("inclusion proof of %d from raw tiles: %v", idx, err)
		}
		// And the ledger's own prover gives the same proof.
		lp, err := ledger.NewProver(ledger.DirFetcher(dir), 0).Inclusion(ctx, idx, cp.size)
		if err != nil || len(lp) != len(prf) {
			t.Fatalf("ledger prover for %d: %d hashes, %v", idx, len(lp), err)
		}
		for i := range lp {
			if !bytes.Equal(lp[i][:], prf[i]) {
				t.Fatalf("ledger proof of %d differs at hash %d", idx, i)
			}
		}
	}

	// Cosignature, checked by hand per C2SP tlog-cosignature.
	const witness = "witness.test.example/w1"
	wpub, wpriv, _ := ed25519.GenerateKey(rand.Reader)
	at := time.Unix(1_760_000_123, 0)
	cosigner, err := ledger.NewCosigner(witness, wpriv, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := ledger.Cosign(signed, cosigner)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(cosigned, signed) {
		t.Fatal("cosigning changed the log's note")
	}
	sigLine, ok := bytes.CutPrefix(cosigned[len(signed):], []byte("\u2014 "))
	if !ok || bytes.Count(sigLine, []byte("\n")) != 1 || !bytes.HasSuffix(sigLine, []byte("\n")) {
		t.Fatalf("cosignature line %q", cosigned[len(signed):])
	}
	name, b64, _ := strings.Cut(strings.TrimSuffix(string(sigLine), "\n"), " ")
	if name != witness {
		t.Fatalf("cosignature by %q", name)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) != 4+8+64 {
		t.Fatalf("cosignature decodes to %d bytes: %v", len(sig), err)
	}
	idHash := sha256.Sum256(append(append([]byte(witness), '\n', 0x04), wpub...))
	if !bytes.Equal(sig[:4], idHash[:4]) {
		t.Fatalf("cosignature key ID %x, want %x", sig[:4], idHash[:4])
	}
	if ts := binary.BigEndian.Uint64(sig[4:12]); ts != uint64(at.Unix()) {
		t.Fatalf("cosignature time %d, want %d", ts, at.Unix())
	}
	msg := "cosignature/v1\ntime " + strconv.FormatInt(at.Unix(), 10) + "\n" + cp.text
	if !ed25519.Verify(wpub, []byte(msg), sig[12:]) {
		t.Fatal("cosignature does not verify over the C2SP message")
	}
	wantKey := witness + "+" + fmt.Sprintf("%x", idHash[:4]) + "+" + base64.StdEncoding.EncodeToString(append([]byte{0x04}, wpub...))
	if got := cosigner.VerifierKey(); got != wantKey {
		t.Fatalf("cosigner verifier key %q, want %q", got, wantKey)
	}
	// A client knowing only the log key still opens the cosigned note.
	if cp2 := openRawCheckpoint(t, cosigned, vkey); cp2.text != cp.text {
		t.Fatal("cosigned note text differs")
	}

	// Served by a plain static file server, the ledger verifies over HTTP,
	// and a third-party client can fetch what it needs by C2SP path.
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	lv, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	hf := ledger.HTTPFetcher{Base: srv.URL, Client: srv.Client()}
	rep, err := ledger.Verify(ctx, hf, ledger.VerifyOptions{Origin: interopOrigin, Verifiers: note.VerifierList(lv), Parallel: 4})
	if err != nil {
		t.Fatalf("verify over HTTP: %v", err)
	}
	if rep.Entries != cp.size || !rep.SignatureChecked || rep.Checkpoint.Root != [32]byte(cp.root) || rep.Tiles == 0 {
		t.Fatalf("verify report %+v", rep)
	}
	if b, err := hf.Fetch(ctx, c2spTile(0, 3, 256)); err != nil || !bytes.Equal(b, raw.read(c2spTile(0, 3, 256))) {
		t.Fatalf("HTTP fetch of a tile: %v", err)
	}
	if _, err := hf.Fetch(ctx, "tile/0/x999/999"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("HTTP fetch of a missing tile: %v, want fs.ErrNotExist", err)
	}
	// A checkpoint signed by the log key over a root the entries do not
	// have (a log signing a forked tree) is caught, and so is one claiming
	// more entries than the bundles hold.
	cpPath := filepath.Join(dir, "checkpoint")
	for _, forged := range []string{
		strings.Replace(cp.text, base64.StdEncoding.EncodeToString(cp.root), base64.StdEncoding.EncodeToString(leaves[0]), 1),
		strings.Replace(cp.text, "\n"+strconv.FormatUint(cp.size, 10)+"\n", "\n"+strconv.FormatUint(cp.size+1, 10)+"\n", 1),
	} {
		if forged == cp.text {
			t.Fatal("forgery did not change the checkpoint")
		}
		fs, err := note.Sign(&note.Note{Text: forged}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cpPath, fs, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ledger.Verify(ctx, hf, ledger.VerifyOptions{Verifiers: note.VerifierList(lv)}); err == nil {
			t.Fatalf("verify accepted a signed checkpoint the entries do not match:\n%s", forged)
		}
	}
	if err := os.WriteFile(cpPath, signed, 0o644); err != nil {
		t.Fatal(err)
	}

	// A tampered tile served over HTTP is caught.
	bad := bytes.Clone(raw.read(c2spTile(0, 7, 256)))
	bad[100] ^= 1
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(c2spTile(0, 7, 256))), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Verify(ctx, hf, ledger.VerifyOptions{Verifiers: note.VerifierList(lv)}); err == nil || !strings.Contains(err.Error(), c2spTile(0, 7, 256)) {
		t.Fatalf("verify of a tampered tile: %v", err)
	}
}
