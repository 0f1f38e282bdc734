package offline

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// COSE header labels and values used by extracts and their receipts.
const (
	// ContentType is the statement's content type (COSE header 3).
	ContentType = "application/vnd.chancery.extract+cbor"
	// HeaderReceipts is the unprotected header of a signed statement that
	// holds its receipts (draft-ietf-cose-merkle-tree-proofs-17, 394).
	HeaderReceipts = 394
	// HeaderVDS names the verifiable data structure in a receipt's
	// protected header (395).
	HeaderVDS = 395
	// HeaderVDP holds the verifiable data proofs in a receipt's
	// unprotected header (396).
	HeaderVDP = 396
	// VDSRFC9162SHA256 is the RFC 9162 Merkle tree with SHA-256 (vds 1).
	VDSRFC9162SHA256 = 1
	// ProofInclusion is the key of inclusion proofs in the vdp map (-1).
	ProofInclusion = -1
	// HeaderCheckpoint is a private-use label (RFC 9052 section 16.2:
	// below -65536) of a receipt's unprotected header that carries the
	// C2SP signed checkpoint whose root the inclusion proof reaches, with
	// the sites' cosignatures: it is what makes the root trustworthy.
	HeaderCheckpoint = -65537
	// TextPrefix starts the text a QR code holds, as "HC1:" did for the
	// EU Digital COVID Certificate: it versions the text encoding.
	TextPrefix = "CX1:"
)

// KeyID is the COSE key id (header 4) of a state key: its purpose and
// generation, "extract/0", which the verifier looks up in the charter's
// state_keys.
func KeyID(purpose string, gen uint32) []byte {
	return []byte(purpose + "/" + strconv.FormatUint(uint64(gen), 10))
}

// parseKeyID is the inverse of KeyID.
func parseKeyID(kid []byte) (string, uint32, error) {
	p, g, ok := strings.Cut(string(kid), "/")
	n, err := strconv.ParseUint(g, 10, 32)
	if !ok || err != nil || strconv.FormatUint(n, 10) != g {
		return "", 0, fmt.Errorf("key id %q is not purpose/generation", kid)
	}
	return p, uint32(n), nil
}

// SignStatement signs claims as a COSE_Sign1 statement (without receipt)
// with the state's extract key signer of generation gen, and returns it
// with the hash its act entry records.
func SignStatement(signer crypto.Signer, gen uint32, c *Claims) (msg []byte, actHash [32]byte, err error) {
	payload, err := MarshalClaims(c)
	if err != nil {
		return nil, actHash, err
	}
	cs, err := cose.NewSigner(cose.AlgorithmEdDSA, signer)
	if err != nil {
		return nil, actHash, fmt.Errorf("extract signer: %w", err)
	}
	m := &cose.Sign1Message{
		Headers: cose.Headers{
			Protected: cose.ProtectedHeader{
				cose.HeaderLabelAlgorithm:   cose.AlgorithmEdDSA,
				cose.HeaderLabelContentType: ContentType,
				cose.HeaderLabelKeyID:       KeyID("extract", gen),
			},
			Unprotected: cose.UnprotectedHeader{},
		},
		Payload: payload,
	}
	if err := m.Sign(rand.Reader, nil, cs); err != nil {
		return nil, actHash, fmt.Errorf("sign extract %s: %w", c.ID, err)
	}
	msg, err = m.MarshalCBOR()
	if err != nil {
		return nil, actHash, fmt.Errorf("encode extract %s: %w", c.ID, err)
	}
	tbs, err := ToBeSigned(msg)
	if err != nil {
		return nil, actHash, err
	}
	return msg, sha256.Sum256(tbs), nil
}

// sign1 is the COSE_Sign1 array (RFC 9052 section 4.2), read without
// interpreting the headers.
type sign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

// sigStructure is Sig_structure for COSE_Sign1 (RFC 9052 section 4.4).
type sigStructure struct {
	_           struct{} `cbor:",toarray"`
	Context     string
	Protected   []byte
	ExternalAAD []byte
	Payload     []byte
}

// ToBeSigned returns the to-be-signed bytes (the encoded Sig_structure) of
// a tagged COSE_Sign1 message with an attached payload.
//
// The act's ledger entry records the SHA-256 of these bytes rather than of
// the whole message: the receipt is attached afterwards in the message's
// unprotected header, which the signature does not cover, so only the
// signed part can be hashed before the entry exists. They cover the
// protected header (algorithm, key id) and the claims, everything the
// state asserts; the signature over them is checked separately.
func ToBeSigned(msg []byte) ([]byte, error) {
	raw, err := untag(msg)
	if err != nil {
		return nil, err
	}
	var s sign1
	if err := frameMode.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	if s.Payload == nil {
		return nil, errors.New("COSE_Sign1: detached payload where the claims belong")
	}
	return sigStructureBytes(s.Protected, s.Payload)
}

// untag returns the content of a CBOR tag 18 (COSE_Sign1).
func untag(msg []byte) ([]byte, error) {
	var tag cbor.RawTag
	if err := frameMode.Unmarshal(msg, &tag); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	if tag.Number != cose.CBORTagSign1Message {
		return nil, fmt.Errorf("COSE_Sign1: tag %d, want %d", tag.Number, cose.CBORTagSign1Message)
	}
	return tag.Content, nil
}

func sigStructureBytes(protected, payload []byte) ([]byte, error) {
	b, err := encMode.Marshal(sigStructure{Context: "Signature1", Protected: protected, ExternalAAD: []byte{}, Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("Sig_structure: %w", err)
	}
	return b, nil
}

// statementProtected and statementFrame read a statement for
// verification, refusing any header but these.
type statementProtected struct {
	Alg         int64  `cbor:"1,keyasint"`
	ContentType string `cbor:"3,keyasint"`
	Kid         []byte `cbor:"4,keyasint"`
}

type statementUnprotected struct {
	Receipts [][]byte `cbor:"394,keyasint"`
}

type statementFrame struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected statementUnprotected
	Payload     []byte
	Signature   []byte
}
