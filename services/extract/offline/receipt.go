package offline

import (
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/chancery-gov/chancery/ledger"
)

// inclusionProof is the draft's inclusion proof for RFC 9162_SHA256:
// [tree-size, leaf-index, inclusion-path].
type inclusionProof struct {
	_        struct{} `cbor:",toarray"`
	TreeSize uint64
	Index    uint64
	Path     [][]byte
}

// AttachReceipt returns the statement msg with receipt in its unprotected
// header (label 394), as SCITT attaches receipts to signed statements. The
// statement must have an empty unprotected header; the signed parts are
// copied byte for byte.
func AttachReceipt(msg, receipt []byte) ([]byte, error) {
	body, err := untag(msg)
	if err != nil {
		return nil, fmt.Errorf("attach receipt: %w", err)
	}
	var s sign1
	if err := frameMode.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("attach receipt: %w", err)
	}
	if len(s.Unprotected) != 1 || s.Unprotected[0] != 0xa0 {
		return nil, errors.New("attach receipt: the statement's unprotected header is not empty")
	}
	out, err := encMode.Marshal(cbor.Tag{Number: cose.CBORTagSign1Message, Content: statementFrame{
		Protected: s.Protected, Unprotected: statementUnprotected{Receipts: [][]byte{receipt}},
		Payload: s.Payload, Signature: s.Signature,
	}})
	if err != nil {
		return nil, fmt.Errorf("attach receipt: %w", err)
	}
	return out, nil
}

// parsedReceipt is a receipt decoded, not yet verified.
type parsedReceipt struct {
	raw       []byte // the whole receipt, for go-cose when its signature is checked
	protected []byte
	signature []byte
	gen       uint32
	proof     inclusionProof
	cp        []byte
}

// receiptProtected and receiptUnprotected are the receipt's headers, read
// into structs that refuse any other label: the receipt is parsed on every
// verification, so it is read without go-cose's generic header maps
// (go-cose checks its signature, once per checkpoint).
type receiptProtected struct {
	Alg int64  `cbor:"1,keyasint"`
	Kid []byte `cbor:"4,keyasint"`
	VDS int64  `cbor:"395,keyasint"`
}

type receiptUnprotected struct {
	VDP        receiptVDP `cbor:"396,keyasint"`
	Checkpoint []byte     `cbor:"-65537,keyasint"`
}

type receiptVDP struct {
	Inclusion [][]byte `cbor:"-1,keyasint"`
}

// receiptFrame is a COSE_Sign1 whose unprotected header is the receipt's.
type receiptFrame struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected receiptUnprotected
	Payload     []byte
	Signature   []byte
}

// parseReceipt decodes a receipt strictly: the algorithm, the key id, the
// verifiable data structure, exactly one inclusion proof, the checkpoint,
// and nothing else, each in its deterministic encoding.
func parseReceipt(b []byte) (*parsedReceipt, error) {
	body, err := untag(b)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	var f receiptFrame
	if err := decodeStrictUnknown(body, &f); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if f.Payload != nil {
		return nil, errors.New("receipt: payload attached, the draft detaches it (the root)")
	}
	var ph receiptProtected
	if err := decodeStrictUnknown(f.Protected, &ph); err != nil {
		return nil, fmt.Errorf("receipt: protected header: %w", err)
	}
	if ph.Alg != int64(cose.AlgorithmEdDSA) {
		return nil, fmt.Errorf("receipt: protected alg %d is not EdDSA (%d)", ph.Alg, cose.AlgorithmEdDSA)
	}
	purpose, gen, err := parseKeyID(ph.Kid)
	if err != nil || purpose != "extract" {
		return nil, fmt.Errorf("receipt: key id %q is not an extract key", ph.Kid)
	}
	if ph.VDS != VDSRFC9162SHA256 {
		return nil, fmt.Errorf("receipt: verifiable data structure (395) is %d, want %d (RFC9162_SHA256)", ph.VDS, VDSRFC9162SHA256)
	}
	if len(f.Unprotected.VDP.Inclusion) != 1 {
		return nil, errors.New("receipt: verifiable data proofs (396) do not hold exactly one inclusion proof (-1)")
	}
	if len(f.Unprotected.Checkpoint) == 0 {
		return nil, fmt.Errorf("receipt: no signed checkpoint (%d)", HeaderCheckpoint)
	}
	r := &parsedReceipt{raw: b, protected: f.Protected, signature: f.Signature, gen: gen, cp: f.Unprotected.Checkpoint}
	if err := decodeStrict(f.Unprotected.VDP.Inclusion[0], &r.proof); err != nil {
		return nil, fmt.Errorf("receipt: inclusion proof: %w", err)
	}
	if len(r.proof.Path) > 64 {
		return nil, fmt.Errorf("receipt: inclusion path of %d hashes, at most 64", len(r.proof.Path))
	}
	for i, h := range r.proof.Path {
		if len(h) != len(ledger.Hash{}) {
			return nil, fmt.Errorf("receipt: inclusion path hash %d is %d bytes", i, len(h))
		}
	}
	return r, nil
}

// decodeStrict decodes b into v and refuses any encoding but the
// deterministic one.
func decodeStrict(b []byte, v any) error { return decodeIn(frameMode, b, v) }

// decodeStrictUnknown is decodeStrict refusing fields the struct does not
// name.
func decodeStrictUnknown(b []byte, v any) error { return decodeIn(strictMode, b, v) }

func decodeIn(m cbor.DecMode, b []byte, v any) error {
	if err := m.Unmarshal(b, v); err != nil {
		return err
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	if string(again) != string(b) {
		return errors.New("not in the deterministic CBOR encoding")
	}
	return nil
}

// ReceiptSigner makes the receipts of many acts proven against one
// checkpoint. The receipt's signature covers its protected header and the
// detached root only, so it is the same for every act in the tree: it is
// made once, and each receipt differs only in its unprotected proof.
type ReceiptSigner struct {
	gen       uint32
	cp        ledger.Checkpoint
	signed    []byte
	protected cose.ProtectedHeader
	sig       []byte
}

// NewReceiptSigner signs the root of the signed checkpoint cp (which must
// carry the sites' cosignatures) with the state's extract key.
func NewReceiptSigner(signer crypto.Signer, gen uint32, cp []byte) (*ReceiptSigner, error) {
	c, err := ledger.ParseSignedCheckpoint(cp)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	cs, err := cose.NewSigner(cose.AlgorithmEdDSA, signer)
	if err != nil {
		return nil, fmt.Errorf("receipt signer: %w", err)
	}
	m := &cose.Sign1Message{
		Headers: cose.Headers{Protected: cose.ProtectedHeader{
			cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA,
			cose.HeaderLabelKeyID:     KeyID("extract", gen),
			int64(HeaderVDS):          int64(VDSRFC9162SHA256),
		}},
		Payload: c.Root[:],
	}
	if err := m.Sign(rand.Reader, nil, cs); err != nil {
		return nil, fmt.Errorf("sign receipt: %w", err)
	}
	return &ReceiptSigner{gen: gen, cp: c, signed: cp, protected: m.Headers.Protected, sig: m.Signature}, nil
}

// Checkpoint is the checkpoint the receipts prove against.
func (s *ReceiptSigner) Checkpoint() ledger.Checkpoint { return s.cp }

// Receipt encodes the receipt of entry index with its inclusion path.
func (s *ReceiptSigner) Receipt(index uint64, path []ledger.Hash) ([]byte, error) {
	hs := make([][]byte, len(path))
	for i := range path {
		hs[i] = path[i][:]
	}
	prf, err := encMode.Marshal(inclusionProof{TreeSize: s.cp.Size, Index: index, Path: hs})
	if err != nil {
		return nil, fmt.Errorf("receipt: inclusion proof: %w", err)
	}
	m := &cose.Sign1Message{
		Headers: cose.Headers{
			Protected: s.protected,
			Unprotected: cose.UnprotectedHeader{
				int64(HeaderVDP):        map[any]any{int64(ProofInclusion): []any{prf}},
				int64(HeaderCheckpoint): s.signed,
			},
		},
		Signature: s.sig,
	}
	b, err := m.MarshalCBOR()
	if err != nil {
		return nil, fmt.Errorf("encode receipt of entry %d: %w", index, err)
	}
	return b, nil
}
