package offline

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/veraison/go-cose"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
)

// Config is the charter's section services.extract.
type Config struct {
	// Cosigners is how many sites other than the writer must have cosigned
	// the checkpoint of an extract's receipt. The verifier requires the
	// largest of this, the extract's registry's quorum_sites, and 1.
	Cosigners int `yaml:"cosigners,omitempty"`
	// Keys bound the epochs in which each generation of the extract key
	// may issue. A generation not listed may issue in any epoch.
	Keys []KeyValidity `yaml:"keys,omitempty"`
}

// KeyValidity bounds the epochs of one generation of the extract key.
type KeyValidity struct {
	Generation uint32 `yaml:"generation"`
	FromEpoch  uint64 `yaml:"from_epoch"`
	// UntilEpoch is the last epoch the generation may issue in; 0 is open.
	UntilEpoch uint64 `yaml:"until_epoch,omitempty"`
}

// Verifier checks extracts offline against one charter. It is safe for
// concurrent use. It remembers the receipts' checkpoints it has checked
// (by their exact bytes, root and receipt signature), so that a verifier
// meeting many extracts of one checkpoint checks its signatures once.
type Verifier struct {
	c     *charter.Charter
	cfg   Config
	sites *Sites
	keys  map[uint32]cose.Verifier
	pubs  map[uint32]ed25519.PublicKey

	mu    sync.RWMutex
	cache map[[32]byte]*Cosigned
}

// maxCache bounds the checkpoints remembered; past it the cache restarts.
const maxCache = 1024

// NewVerifier reads what verification needs from the charter: the
// extract key's generations, the sites' keys, services.extract.
func NewVerifier(c *charter.Charter) (*Verifier, error) {
	v := &Verifier{c: c, keys: map[uint32]cose.Verifier{}, pubs: map[uint32]ed25519.PublicKey{}, cache: map[[32]byte]*Cosigned{}}
	if _, err := c.Service("extract", &v.cfg); err != nil {
		return nil, err
	}
	if v.cfg.Cosigners < 0 {
		return nil, fmt.Errorf("charter services.extract.cosigners: %d is negative", v.cfg.Cosigners)
	}
	for i, k := range c.StateKeys {
		if k.Purpose != "extract" {
			continue
		}
		pub, err := k.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("charter state_keys[%d]: %w", i, err)
		}
		ed, ok := pub.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("charter state_keys[%d]: the extract key must be EdDSA, not %s", i, k.Alg)
		}
		cv, err := cose.NewVerifier(cose.AlgorithmEdDSA, ed)
		if err != nil {
			return nil, fmt.Errorf("charter state_keys[%d]: %w", i, err)
		}
		v.keys[k.Generation] = cv
		v.pubs[k.Generation] = ed
	}
	if len(v.keys) == 0 {
		return nil, fmt.Errorf("charter v%d of %s publishes no extract key (state_keys)", c.Version, c.Guest.ID)
	}
	var err error
	if v.sites, err = NewSites(c); err != nil {
		return nil, err
	}
	return v, nil
}

// Report is what Verify found and checked.
type Report struct {
	Claims *Claims
	// KeyGeneration is the generation of the state key that signed.
	KeyGeneration uint32
	// Act is the ledger index of the act entry, and Entry its encoding.
	Act   uint64
	Entry []byte
	// Checkpoint is the cosigned checkpoint the receipt proves against.
	Checkpoint ledger.Checkpoint
	Writer     string
	Cosigners  []string
	// Checks are the checks made, in order, each a sentence.
	Checks []string
}

func (r *Report) check(format string, a ...any) {
	r.Checks = append(r.Checks, fmt.Sprintf(format, a...))
}

// ErrInvalid is wrapped by every refusal of Verify.
var ErrInvalid = errors.New("extract invalid")

// VerifyText verifies the text of a QR code ("CX1:..."; EncodeText).
func (v *Verifier) VerifyText(s string) (*Report, error) {
	msg, err := DecodeText(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r, err := v.Verify(msg)
	if r != nil {
		r.Checks = append([]string{"decoded the text: Base45 (RFC 9285), then zlib, into a COSE_Sign1 of " + fmt.Sprint(len(msg)) + " bytes"}, r.Checks...)
	}
	return r, err
}

// Verify checks an extract (a tagged COSE_Sign1 with its receipt) with
// the charter alone: the state key's signature and its validity in the
// act's epoch, the claims, the receipt's inclusion proof of the act entry,
// the receipt's signature, and the checkpoint's writer signature and
// cosignatures. On failure the report holds the checks that passed.
func (v *Verifier) Verify(msg []byte) (*Report, error) {
	r := &Report{}
	fail := func(format string, a ...any) (*Report, error) {
		return r, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	// The statement is read into structs that refuse any other header,
	// and its signature checked over the Sig_structure built from the
	// bytes as received: go-cose's generic header maps cost a third of a
	// verification (TestIndependentDecoder checks the same extracts with
	// go-cose).
	body, err := untag(msg)
	if err != nil {
		return fail("%v", err)
	}
	var st statementFrame
	if err := decodeStrictUnknown(body, &st); err != nil {
		return fail("COSE_Sign1: %v", err)
	}
	var ph statementProtected
	if err := decodeStrictUnknown(st.Protected, &ph); err != nil {
		return fail("COSE_Sign1: protected header: %v", err)
	}
	if ph.Alg != int64(cose.AlgorithmEdDSA) {
		return fail("COSE_Sign1: protected alg %d is not EdDSA (%d)", ph.Alg, cose.AlgorithmEdDSA)
	}
	if ph.ContentType != ContentType {
		return fail("COSE_Sign1: content type %q is not %s", ph.ContentType, ContentType)
	}
	purpose, gen, err := parseKeyID(ph.Kid)
	if err != nil || purpose != "extract" {
		return fail("COSE_Sign1: key id %q is not an extract key", ph.Kid)
	}
	pub, ok := v.pubs[gen]
	if !ok {
		return fail("COSE_Sign1: key id %q: the charter publishes no extract key of generation %d", ph.Kid, gen)
	}
	if st.Payload == nil {
		return fail("COSE_Sign1: detached payload where the claims belong")
	}
	tbs, err := sigStructureBytes(st.Protected, st.Payload)
	if err != nil {
		return fail("%v", err)
	}
	if !ed25519.Verify(pub, tbs, st.Signature) {
		return fail("signature by the state's extract key generation %d does not verify", gen)
	}
	r.KeyGeneration = gen
	r.check("signature: EdDSA by the state's extract key, generation %d, as the charter v%d publishes it", gen, v.c.Version)

	c, err := ParseClaims(st.Payload)
	if err != nil {
		return fail("%v", err)
	}
	r.Claims = c
	if c.Guest != v.c.Guest.ID {
		return fail("claims: guest %q, the charter is %q's", c.Guest, v.c.Guest.ID)
	}
	if _, ok := v.c.Site(c.Site); !ok {
		return fail("claims: issuing site %q is not in the charter", c.Site)
	}
	reg, ok := v.c.Registry(c.Registry)
	if !ok {
		return fail("claims: registry %q is not in the charter", c.Registry)
	}
	r.check("claims: guest %s, registry %s, record %s version %d (ledger index %d), %d certified fields, issued by site %s at %s in epoch %d",
		c.Guest, c.Registry, c.Record, c.Version, c.RecordIndex, len(c.Fields), c.Site, time.Unix(c.IssuedAt, 0).UTC().Format(time.RFC3339), c.Epoch)
	for _, kv := range v.cfg.Keys {
		if kv.Generation == gen && (c.Epoch < kv.FromEpoch || (kv.UntilEpoch != 0 && c.Epoch > kv.UntilEpoch)) {
			return fail("key generation %d may issue in epochs %d to %d (services.extract.keys), the extract is of epoch %d", gen, kv.FromEpoch, kv.UntilEpoch, c.Epoch)
		}
	}
	r.check("key validity: generation %d may issue in epoch %d", gen, c.Epoch)

	// The act entry, rebuilt from the statement alone.
	h := sha256.Sum256(tbs)
	entry, err := ledger.Entry{Type: ledger.TypeAct, Epoch: c.Epoch, Time: time.Unix(c.IssuedAt, 0), Payload: h[:]}.MarshalBinary()
	if err != nil {
		return fail("act entry: %v", err)
	}
	r.Entry = entry
	leaf := ledger.LeafHash(entry)

	if len(st.Unprotected.Receipts) != 1 {
		return fail("COSE_Sign1: unprotected header %d does not hold exactly one receipt", HeaderReceipts)
	}
	raw := st.Unprotected.Receipts[0]
	rc, err := parseReceipt(raw)
	if err != nil {
		return fail("%v", err)
	}
	path := rc.proof.Path
	root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, rc.proof.Index, rc.proof.TreeSize, leaf[:], path)
	if err != nil {
		return fail("receipt: inclusion proof of entry %d in a tree of size %d: %v", rc.proof.Index, rc.proof.TreeSize, err)
	}
	r.Act = rc.proof.Index
	r.check("inclusion: the act entry (type act, epoch %d, SHA-256 of the to-be-signed bytes) is leaf %d of a tree of size %d with root %x (RFC 9162, %d proof hashes)",
		c.Epoch, rc.proof.Index, rc.proof.TreeSize, root, len(path))

	if cp, err := ledger.ParseSignedCheckpoint(rc.cp); err == nil && [32]byte(cp.Root) != [32]byte(root) {
		// Said before the signatures are checked: the likelier cause.
		return fail("receipt: the checkpoint's root %x is not the root %x the proof reaches", cp.Root, root)
	}
	cs, err := v.receiptCheckpoint(rc, root, need(v.cfg, reg))
	if err != nil {
		return fail("%v", err)
	}
	r.check("receipt signature: EdDSA by the state's extract key generation %d over the root", rc.gen)
	cp := cs.Checkpoint
	if cp.Size != rc.proof.TreeSize {
		return fail("receipt: the proof is for a tree of size %d, the checkpoint of size %d", rc.proof.TreeSize, cp.Size)
	}
	if [32]byte(cp.Root) != [32]byte(root) {
		return fail("receipt: the checkpoint's root %x is not the root %x the proof reaches", cp.Root, root)
	}
	if cp.Epoch < c.Epoch {
		return fail("receipt: checkpoint of epoch %d is older than the act's epoch %d", cp.Epoch, c.Epoch)
	}
	r.Checkpoint, r.Writer, r.Cosigners = cp, cs.Writer, cs.Cosigners
	r.check("checkpoint: origin %s, size %d, epoch %d, root equal to the proof's; signed by the log key of site %s", cp.Origin, cp.Size, cp.Epoch, cs.Writer)
	r.check("cosignatures: %d sites %v cosigned it (tlog-cosignature/v1), at least %d required", len(cs.Cosigners), cs.Cosigners, need(v.cfg, reg))
	r.check("as of checkpoint %d (epoch %d) the act is in the ledger; whether a later version supersedes the record needs a site (online check)", cp.Size, cp.Epoch)
	return r, nil
}

// need is the number of cosigning sites a checkpoint needs: the largest of
// services.extract.cosigners, the registry's quorum_sites, and 1.
func need(cfg Config, reg *charter.Registry) int {
	return max(cfg.Cosigners, reg.QuorumSites, 1)
}

// receiptCheckpoint verifies the receipt's signature over root and its
// checkpoint, or finds them verified already.
func (v *Verifier) receiptCheckpoint(rc *parsedReceipt, root []byte, need int) (*Cosigned, error) {
	hh := sha256.New()
	for _, b := range [][]byte{rc.protected, root, rc.signature, rc.cp} {
		var n [8]byte
		for i := range 8 {
			n[i] = byte(uint64(len(b)) >> (8 * i))
		}
		hh.Write(n[:])
		hh.Write(b)
	}
	var key [32]byte
	hh.Sum(key[:0])
	v.mu.RLock()
	cs, ok := v.cache[key]
	v.mu.RUnlock()
	if ok && len(cs.Cosigners) >= need {
		return cs, nil
	}
	kv, ok := v.keys[rc.gen]
	if !ok {
		return nil, fmt.Errorf("receipt: the charter publishes no extract key of generation %d", rc.gen)
	}
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(rc.raw); err != nil {
		return nil, fmt.Errorf("receipt: %v", err)
	}
	m.Payload = root
	if err := m.Verify(nil, kv); err != nil {
		return nil, fmt.Errorf("receipt signature over the root: %v", err)
	}
	cs, err := v.sites.Open(rc.cp, need)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	v.mu.Lock()
	if len(v.cache) >= maxCache {
		clear(v.cache)
	}
	v.cache[key] = cs
	v.mu.Unlock()
	return cs, nil
}
