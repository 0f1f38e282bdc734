package ledger

// Tests that each guard between a hostile sender and the ledger is load-
// bearing: every one of them fails when its check is deleted (see
// docs/testing.md, "Mutation testing"). The WAL's fdatasync is the one
// guard not covered here: SIGKILL keeps the page cache, so only the
// power-loss filesystem harness of the fail-closed work can tell it is
// missing.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestOpenCheckpointRefusesCosignatureOnly: a note whose only verified
// signature is a cosigner's is not the log's checkpoint, however well the
// cosignature verifies. Accepting it would let anyone holding a cosigner
// key (a site signing receipts) write checkpoints of any size.
func TestOpenCheckpointRefusesCosignatureOnly(t *testing.T) {
	k := newTestKey(t, testOrigin)
	_, ck, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewCosigner(testOrigin+"/sites/b", ck, nil)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := ParseVerifierKey(cs.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	vs := note.VerifierList(k.verifier, cv)
	cp := Checkpoint{Origin: testOrigin, Size: 1 << 30, Epoch: 1}

	only, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, cs)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := OpenCheckpoint(only, testOrigin, vs); err == nil {
		t.Fatalf("opened a checkpoint of size %d signed only by a cosigner", got.Size)
	} else if !strings.Contains(err.Error(), "cosignature") {
		t.Fatalf("refusal %q does not say why (only cosignatures)", err)
	}
	// The genuine article opens, cosigned or not: the refusal above is
	// about the missing log signature, not about the verifiers.
	signed, err := SignCheckpoint(cp, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := Cosign(signed, cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{signed, cosigned} {
		if _, _, err := OpenCheckpoint(s, testOrigin, vs); err != nil {
			t.Fatalf("genuine checkpoint refused: %v", err)
		}
	}
}

// TestMirrorRefusesCheckpointOfAnotherEpoch: a checkpoint binds the tree
// to the epoch of its newest entry. A writer key that signs the right root
// under another epoch (a fenced home claiming the new epoch's tree, or
// the new writer claiming an old one) is refused, whole batch or piece,
// and the mirror is left as it was.
func TestMirrorRefusesCheckpointOfAnotherEpoch(t *testing.T) {
	ctx := context.Background()
	k := newTestKey(t, testOrigin)
	wdir := t.TempDir()
	w := openTestLog(t, wdir, k)
	defer w.Close()
	m := openTestMirror(t, t.TempDir())
	defer m.Close()

	enc, signed := writerBatch(t, w, 0, 10, 3)
	_, cp := w.Checkpoint()
	if cp.Epoch != 3 {
		t.Fatalf("writer checkpoint of epoch %d, want 3", cp.Epoch)
	}
	resigned := func(epoch uint64) []byte {
		c := cp
		c.Epoch = epoch
		s, err := SignCheckpoint(c, k.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	prf, err := NewProver(DirFetcher(wdir), 0).Consistency(ctx, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		entries [][]byte
		signed  []byte
		proof   []Hash
	}{
		{"whole batch, later epoch", enc, resigned(4), nil},
		{"whole batch, earlier epoch", enc, resigned(2), nil},
		{"piece, earlier epoch", enc[:5], resigned(2), prf},
	}
	for _, tc := range cases {
		if _, err := m.AppendMirrored(ctx, tc.entries, tc.signed, tc.proof); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if !strings.Contains(err.Error(), "epoch") {
			t.Errorf("%s: refusal %q does not name the epoch", tc.name, err)
		}
		if m.MirrorSize() != 0 || m.Size() != 0 {
			t.Fatalf("%s: a refused batch changed the mirror", tc.name)
		}
	}
	// The same entries under the writer's own checkpoint are taken: the
	// refusals were the epoch's alone. A piece may name a later epoch
	// (entries to come may open it).
	if _, err := m.AppendMirrored(ctx, enc[:5], resigned(4), prf); err != nil {
		t.Fatalf("piece under a later-epoch checkpoint: %v", err)
	}
	if _, err := m.AppendMirrored(ctx, enc[5:], signed, nil); err != nil {
		t.Fatalf("genuine rest of the batch: %v", err)
	}
	// No entries under the checkpoint of the tree held (a writer that
	// signed the same tree anew): nothing to store, and no gap. (Found by
	// mutation testing.)
	if got, err := m.AppendMirrored(ctx, nil, signed, nil); err != nil || got.Size != 10 {
		t.Fatalf("an empty batch at the mirror's size: %+v, %v", got, err)
	}
	if m.MirrorSize() != 10 {
		t.Fatalf("an empty batch changed the mirror to %d entries", m.MirrorSize())
	}
}

// TestOpenCheckpointRefusesWhatIsNotTheLogs: a note that verifies is not
// yet the log's checkpoint. Refused: a text that does not parse as one
// (though it starts with the origin), a checkpoint of another origin than
// the one expected, and one also signed by a known key that is neither
// the log's nor a cosigner's. (Found by mutation testing.)
func TestOpenCheckpointRefusesWhatIsNotTheLogs(t *testing.T) {
	k := newTestKey(t, testOrigin)
	other := newTestKey(t, "other.example/log")
	vs := note.VerifierList(k.verifier, other.verifier)
	bad, err := note.Sign(&note.Note{Text: testOrigin + "\nnot a size\nno root\nepoch 1\n"}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenCheckpoint(bad, testOrigin, vs); err == nil {
		t.Error("opened a signed note that is no checkpoint")
	}
	cp := Checkpoint{Origin: testOrigin, Size: 3, Epoch: 1}
	signed, err := SignCheckpoint(cp, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenCheckpoint(signed, "other.example/log", vs); err == nil {
		t.Error("opened a checkpoint of another origin than the one expected")
	}
	both, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, k.signer, other.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenCheckpoint(both, testOrigin, vs); err == nil {
		t.Error("opened a checkpoint also signed by another log's key")
	}
	if _, _, err := OpenCheckpoint(signed, testOrigin, vs); err != nil {
		t.Errorf("the genuine checkpoint: %v", err)
	}
}

// TestCosignatureTimeAndShortSignature: the time a cosigner signed at is
// read back from a verified cosignature; a note it did not cosign has
// none; and a cosignature too short to hold a time is refused by the
// verifier, not read past its end. (Found by mutation testing.)
func TestCosignatureTimeAndShortSignature(t *testing.T) {
	k := newTestKey(t, testOrigin)
	_, ck, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 0).UTC()
	cs, err := NewCosigner(testOrigin+"/sites/b", ck, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseVerifierKey(cs.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cv := v.(*CosignatureVerifier)
	signed, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: 3, Epoch: 1}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := Cosign(signed, cs)
	if err != nil {
		t.Fatal(err)
	}
	vs := note.VerifierList(k.verifier, cv)
	_, n, err := OpenCheckpoint(cosigned, testOrigin, vs)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := CosignatureTime(n, cv); err != nil || !got.Equal(at) {
		t.Fatalf("cosignature time %v, %v; want %v", got, err, at)
	}
	_, plain, err := OpenCheckpoint(signed, testOrigin, vs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CosignatureTime(plain, cv); err == nil {
		t.Fatal("a time read from a note the cosigner did not sign")
	}
	if cv.Verify(cp3Text(), []byte{1, 2, 3}) {
		t.Fatal("a 3-byte cosignature verified")
	}
}

func cp3Text() []byte { return Checkpoint{Origin: testOrigin, Size: 3, Epoch: 1}.Marshal() }
