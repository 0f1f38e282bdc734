package extract_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/veraison/go-cose"
	"golang.org/x/mod/sumdb/note"
)

// TestIndependentDecoder checks an extract with code that shares nothing
// with ours: go-cose decodes and verifies the statement and the receipt,
// fxamacker/cbor reads the claims and the proof, the act entry is built
// by hand from docs/extracts.md, transparency-dev/merkle verifies the
// inclusion proof, x/mod's note verifies the writer's checkpoint
// signature and crypto/ed25519 the cosignatures.
func TestIndependentDecoder(t *testing.T) {
	f := newFixture(t)
	home := f.openLog(t, "home")
	e := issueOne(t, f.issuer(t, "home", home, 1, "embassy-north", "embassy-south"), 0)

	_, pubAny, err := f.c.StateKeyFor("extract")
	if err != nil {
		t.Fatal(err)
	}
	pub := pubAny.(ed25519.PublicKey)
	cv, err := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err != nil {
		t.Fatal(err)
	}
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(e.COSE); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(nil, cv); err != nil {
		t.Fatalf("go-cose: statement signature: %v", err)
	}
	var claims map[int]any
	if err := cbor.Unmarshal(m.Payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims[1] != f.c.Guest.ID || claims[2] != "population" || claims[9] != "home" {
		t.Fatalf("claims: %v", claims)
	}
	epoch, iat := claims[8].(uint64), claims[7].(uint64)

	// The act entry: version 1, type 9, epoch, time in ms, SHA-256 of the
	// COSE Sig_structure.
	var protected []byte
	if err := cbor.Unmarshal(m.Headers.RawProtected, &protected); err != nil {
		t.Fatal(err)
	}
	tbs, err := cbor.Marshal([]any{"Signature1", protected, []byte{}, m.Payload})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(tbs)
	entry := []byte{1, 9}
	entry = binary.BigEndian.AppendUint64(entry, epoch)
	entry = binary.BigEndian.AppendUint64(entry, iat*1000)
	entry = append(entry, h[:]...)
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)

	var receiptBytes []byte
	for k, v := range m.Headers.Unprotected {
		if k == uint64(394) || k == int64(394) {
			receiptBytes = v.([]any)[0].([]byte)
		}
	}
	var rc cose.Sign1Message
	if err := rc.UnmarshalCBOR(receiptBytes); err != nil {
		t.Fatal(err)
	}
	var vdp map[any]any
	var signed []byte
	for k, v := range rc.Headers.Unprotected {
		switch k {
		case uint64(396), int64(396):
			vdp = v.(map[any]any)
		case int64(-65537):
			signed = v.([]byte)
		}
	}
	var incl struct {
		_    struct{} `cbor:",toarray"`
		Size uint64
		Idx  uint64
		Path [][]byte
	}
	if err := cbor.Unmarshal(vdp[int64(-1)].([]any)[0].([]byte), &incl); err != nil {
		t.Fatal(err)
	}

	// The checkpoint: note text, root on line 3.
	i := bytes.LastIndex(signed, []byte("\n\n"))
	text := string(signed[:i+1])
	lines := strings.Split(text, "\n")
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := strconv.ParseUint(lines[1], 10, 64); size != incl.Size {
		t.Fatalf("checkpoint size %d, proof size %d", size, incl.Size)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, incl.Idx, incl.Size, leaf, incl.Path, root); err != nil {
		t.Fatalf("transparency-dev/merkle: %v", err)
	}
	rc.Payload = root
	if err := rc.Verify(nil, cv); err != nil {
		t.Fatalf("go-cose: receipt signature over the root: %v", err)
	}

	home0, _ := f.c.Site("home")
	nv, err := note.NewVerifier(home0.CheckpointKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(nv))
	if err != nil {
		t.Fatalf("x/mod note: writer signature: %v", err)
	}
	// Cosignatures: tlog-cosignature/v1 over "cosignature/v1\ntime T\n" + text.
	cosigned := 0
	for _, s := range n.UnverifiedSigs {
		site := strings.TrimPrefix(s.Name, f.c.Guest.Origin+"/sites/")
		st, ok := f.c.Site(site)
		if !ok {
			t.Fatalf("signature by %q", s.Name)
		}
		kb, _ := base64.StdEncoding.DecodeString(strings.SplitN(st.CheckpointKey, "+", 3)[2])
		raw, _ := base64.StdEncoding.DecodeString(s.Base64)
		ts := binary.BigEndian.Uint64(raw[4:12])
		msg := "cosignature/v1\ntime " + strconv.FormatUint(ts, 10) + "\n" + text
		if !ed25519.Verify(ed25519.PublicKey(kb[1:]), []byte(msg), raw[12:]) {
			t.Fatalf("cosignature of %s does not verify", site)
		}
		cosigned++
	}
	if cosigned != 2 {
		t.Fatalf("%d cosignatures, want 2", cosigned)
	}
}
