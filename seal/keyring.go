package seal

import (
	"github.com/chancery-gov/chancery/internal/padme"

	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/chancery-gov/chancery/internal/harden"
)

// ErrAuth means a sealed value did not authenticate: wrong key, wrong
// additional data (guest, registry, record id, version, epoch, generation,
// chunk id) or modified bytes. Which one is deliberately not said.
var ErrAuth = errors.New("seal: message authentication failed")

// ErrUnknownGeneration means a sealed value names a key generation above
// the keyring's current one for its registry: a generation exists only once
// its key event is in the ledger and has been applied with SetGeneration.
var ErrUnknownGeneration = errors.New("seal: key generation not yet in effect")

// ErrOldRecordFormat means a record sealed in an older format than this
// Chancery writes: format 1, whose additional data did not bind the record
// kind, index values and attachments, or format 2, whose plaintext was not
// padded (its exact length showed). It is refused rather than read, so
// that nothing unbound or unpadded passes for what is written now; the
// error names the format.
var ErrOldRecordFormat = errors.New("seal: record sealed in an older format, which this Chancery no longer opens (see docs/seal.md § Sealed record)")

// Keyring derives and caches the keys of one guest state from its root key.
// It is safe for concurrent use.
type Keyring struct {
	guest string

	mu     sync.Mutex
	prk    []byte         // HKDF-Extract(salt, R), in prkMem: R itself is not kept
	prkMem *harden.Secret // locked, left out of core dumps where the platform allows
	regs   map[string]*RegistryKeys
	gens   map[string]uint32
	wiped  bool

	sealLimit atomic.Uint64 // SetSealLimit; 0 is DefaultSealLimit
}

// NewKeyring makes the keyring of guest from r. It keeps its own copy of
// the key material, so r may be wiped right after; a nil or wiped r gives
// a keyring whose every operation fails with ErrWiped.
func NewKeyring(guest string, r *RootKey) *Keyring {
	k := &Keyring{guest: guest, regs: map[string]*RegistryKeys{}, gens: map[string]uint32{}}
	if r == nil || r.wiped || checkNames(guest) != nil {
		k.wiped = true
		return k
	}
	prk, err := hkdf.Extract(sha256.New, r.key[:], []byte(labelHKDFSalt))
	defer clear(prk)
	if err != nil {
		k.wiped = true
		return k
	}
	k.prkMem = harden.NewSecret(len(prk))
	k.prk = k.prkMem.Bytes()
	copy(k.prk, prk)
	return k
}

// Guest is the guest id bound into every derived key.
func (k *Keyring) Guest() string { return k.guest }

// derive returns HKDF-Expand(PRK, deriveInfo(purpose, guest, scope, gen), 32)
// into out. The caller holds k.mu.
func (k *Keyring) deriveLocked(out *[keySize]byte, purpose, scope string, gen uint32) error {
	if k.wiped {
		return ErrWiped
	}
	b, err := hkdf.Expand(sha256.New, k.prk, deriveInfo(purpose, k.guest, scope, gen), keySize)
	if err != nil {
		return fmt.Errorf("seal: derive %s key for %q: %w", purpose, scope, err)
	}
	copy(out[:], b)
	clear(b)
	return nil
}

func (k *Keyring) derive(out *[keySize]byte, purpose, scope string, gen uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.deriveLocked(out, purpose, scope, gen)
}

// Registry returns the keys of registry name, deriving them on first use.
// The same *RegistryKeys is returned for the same name until Wipe.
func (k *Keyring) Registry(name string) *RegistryKeys {
	k.mu.Lock()
	defer k.mu.Unlock()
	if rk, ok := k.regs[name]; ok {
		return rk
	}
	rk := &RegistryKeys{k: k, guest: k.guest, name: name, gens: map[uint32]*genKeys{}}
	rk.blobs = &BlobKeys{rk: rk}
	gen := k.gens[name]
	if gen == 0 {
		gen = 1
	}
	rk.gen.Store(gen)
	if err := checkNames(name); err != nil {
		rk.err = fmt.Errorf("seal: registry name: %w", err)
	}
	for _, d := range []struct {
		key     *[keySize]byte
		purpose string
	}{
		{&rk.idKey, labelMACID}, {&rk.indexKey, labelMACIndex}, {&rk.commitKey, labelMACCommit},
		{&rk.recordCommitKey, labelMACRecord}, {&rk.blobIDKey, labelBlobID},
	} {
		if rk.err != nil {
			break
		}
		if err := k.deriveLocked(d.key, d.purpose, name, 0); err != nil {
			rk.err = err
		}
	}
	if rk.err == nil {
		rk.macs = map[*[keySize]byte]*macKey{}
		for _, key := range []*[keySize]byte{&rk.idKey, &rk.indexKey, &rk.commitKey, &rk.recordCommitKey, &rk.blobIDKey} {
			m, err := newMACKey(key)
			if err != nil {
				rk.err = err
				break
			}
			rk.macs[key] = m
		}
	}
	if rk.err != nil {
		rk.wipe()
	}
	k.regs[name] = rk
	return rk
}

// SetGeneration sets the current data-key generation of registry: new
// seals use it, and Open accepts generations 1..gen. Generations only move
// forward: 0 or a value not above the current one is ignored, so a replayed
// or reordered key event cannot put new writes back on an older key. Use
// ApplyKeyEvent to be told about such events.
func (k *Keyring) SetGeneration(registry string, gen uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.setGenerationLocked(registry, gen)
}

func (k *Keyring) setGenerationLocked(registry string, gen uint32) bool {
	cur := k.gens[registry]
	if cur == 0 {
		cur = 1
	}
	if gen <= cur {
		return false
	}
	k.gens[registry] = gen
	if rk, ok := k.regs[registry]; ok {
		rk.gen.Store(gen)
	}
	return true
}

// generationLocked is the current generation of registry; k.mu is held.
func (k *Keyring) generationLocked(registry string) uint32 {
	if g := k.gens[registry]; g != 0 {
		return g
	}
	return 1
}

// Wipe zeroes every key the keyring holds, including those of every
// RegistryKeys and BlobKeys it handed out; all of them fail with ErrWiped
// afterwards. Go's AES and GCM objects keep an expanded key schedule that
// cannot be zeroed from outside crypto/aes: Wipe drops every reference to
// them, so they are unreachable, but their memory is reclaimed by the
// garbage collector, not overwritten at once.
func (k *Keyring) Wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.prk)
	k.prkMem.Wipe()
	k.prk = nil
	k.wiped = true
	for _, rk := range k.regs {
		rk.wipe()
	}
}

// RecordAD is what a sealed record is bound to besides its registry key.
// Open fails if any field differs from the one given to Seal.
type RecordAD struct {
	Guest, Registry string
	BlindID         [32]byte
	Version         uint64
	Epoch           uint64
	// Bound is a digest, made by the caller, of what else the ledger
	// entry says in clear about this version (for a registry: the record
	// kind, the blinded index values and the attachment references), so
	// that none of it can be swapped under an intact sealed body.
	Bound [32]byte
}

// appendRecordAD is the canonical encoding of ad for generation gen:
//
//	"chancery/seal/v1 record" 0x00 ‖ 0x02 ‖ gen u32 ‖ lp(guest) ‖ lp(registry)
//	‖ blind id (32) ‖ version u64 ‖ epoch u64 ‖ bound (32)
func appendRecordAD(dst []byte, ad *RecordAD, gen uint32) []byte {
	dst = append(dst, adRecord...)
	dst = append(dst, 0, formatRecord)
	dst = binary.BigEndian.AppendUint32(dst, gen)
	dst = appendLP(dst, ad.Guest)
	dst = appendLP(dst, ad.Registry)
	dst = append(dst, ad.BlindID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, ad.Version)
	dst = binary.BigEndian.AppendUint64(dst, ad.Epoch)
	return append(dst, ad.Bound[:]...)
}

// RegistryKeys are the keys of one registry of one guest. Safe for
// concurrent use.
type RegistryKeys struct {
	k           *Keyring
	guest, name string
	gen         atomic.Uint32
	blobs       *BlobKeys

	mu              sync.RWMutex
	err             error // set when the keys could not be derived, or by wipe
	idKey           [keySize]byte
	indexKey        [keySize]byte
	commitKey       [keySize]byte
	recordCommitKey [keySize]byte
	blobIDKey       [keySize]byte
	gens            map[uint32]*genKeys

	// macs holds each MAC key's precomputed HMAC pad states: hmac.New
	// allocates and hashes the key pads, which at bulk-import rates (four
	// MACs a record) cost more than the MACs themselves. Set once in
	// Keyring.Registry; wipe zeroes every state.
	macs map[*[keySize]byte]*macKey

	sealed sync.Map // generation → *genCounts: seals made, for the nonce budget
}

// genKeys are the keys of one generation: record data and blob chunks.
type genKeys struct {
	dataKey, blobKey [keySize]byte
	data, blob       cipher.AEAD
}

func (g *genKeys) wipe() {
	clear(g.dataKey[:])
	clear(g.blobKey[:])
	g.data, g.blob = nil, nil
}

func newGCM(key *[keySize]byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (rk *RegistryKeys) wipe() {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	for _, key := range []*[keySize]byte{&rk.idKey, &rk.indexKey, &rk.commitKey, &rk.recordCommitKey, &rk.blobIDKey} {
		clear(key[:])
	}
	for gen, g := range rk.gens {
		g.wipe()
		delete(rk.gens, gen)
	}
	for _, m := range rk.macs {
		m.wipe()
	}
	if rk.err == nil {
		rk.err = ErrWiped
	}
}

// Name is the registry's name.
func (rk *RegistryKeys) Name() string { return rk.name }

// Generation is the generation new seals use.
func (rk *RegistryKeys) Generation() uint32 { return rk.gen.Load() }

// generation returns the keys of gen, deriving them on first use. It
// refuses generations above the current one, so hostile input cannot make
// the keyring derive and cache keys without bound.
func (rk *RegistryKeys) generation(gen uint32) (*genKeys, error) {
	if gen == 0 {
		return nil, fmt.Errorf("seal: registry %q: generation 0 does not exist", rk.name)
	}
	if cur := rk.gen.Load(); gen > cur {
		return nil, fmt.Errorf("seal: registry %q: generation %d (current %d): %w", rk.name, gen, cur, ErrUnknownGeneration)
	}
	rk.mu.RLock()
	g, err := rk.gens[gen], rk.err
	rk.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("seal: registry %q: %w", rk.name, err)
	}
	if g != nil {
		return g, nil
	}
	g = &genKeys{}
	if err := rk.k.derive(&g.dataKey, labelData, rk.name, gen); err != nil {
		return nil, fmt.Errorf("seal: registry %q generation %d: %w", rk.name, gen, err)
	}
	if err := rk.k.derive(&g.blobKey, labelBlob, rk.name, gen); err != nil {
		g.wipe()
		return nil, fmt.Errorf("seal: registry %q generation %d: %w", rk.name, gen, err)
	}
	if g.data, err = newGCM(&g.dataKey); err == nil {
		g.blob, err = newGCM(&g.blobKey)
	}
	if err != nil {
		g.wipe()
		return nil, fmt.Errorf("seal: registry %q generation %d: %w", rk.name, gen, err)
	}
	rk.mu.Lock()
	defer rk.mu.Unlock()
	if rk.err != nil { // wiped while deriving
		g.wipe()
		return nil, fmt.Errorf("seal: registry %q: %w", rk.name, rk.err)
	}
	if prev := rk.gens[gen]; prev != nil {
		g.wipe()
		return prev, nil
	}
	rk.gens[gen] = g
	return g, nil
}

func (rk *RegistryKeys) checkAD(ad *RecordAD) error {
	if ad.Guest != rk.guest || ad.Registry != rk.name {
		return fmt.Errorf("seal: record of %s/%s given to the keys of %s/%s", ad.Guest, ad.Registry, rk.guest, rk.name)
	}
	return nil
}

// Seal encrypts one record version with the registry's current data key:
//
//	0x03 ‖ generation u32 ‖ nonce (12, random) ‖ AES-256-GCM ciphertext ‖ tag (16)
//
// with the canonical encoding of ad and the generation as additional data.
// What is encrypted is the plaintext padded (internal/padme):
// length u32 ‖ plaintext ‖ zeros, of padme.Len(4 + length) bytes, so the
// sealed size gives the plaintext's length only to within Padmé's
// rounding (at most 12%), not exactly.
// ad must name this keyring's guest and this registry. A random 96-bit
// nonce is safe for about 2^32 seals per generation: past the keyring's
// seal limit (DefaultSealLimit, 2^31) Seal fails with ErrNonceBudget
// until the registry rotates.
func (rk *RegistryKeys) Seal(ad RecordAD, plaintext []byte) ([]byte, error) {
	if err := rk.checkAD(&ad); err != nil {
		return nil, err
	}
	gen := rk.gen.Load()
	g, err := rk.generation(gen)
	if err != nil {
		return nil, err
	}
	if err := rk.counts(gen).data.take(rk.k.sealLimit.Load()); err != nil {
		return nil, fmt.Errorf("seal: registry %q generation %d has sealed its limit of records: %w", rk.name, gen, err)
	}
	// One buffer: header, then the padded plaintext, sealed in place.
	padded := padme.Len(4 + len(plaintext))
	out := make([]byte, recordHeaderLen, recordHeaderLen+padded+tagSize)
	out[0] = formatRecord
	binary.BigEndian.PutUint32(out[1:5], gen)
	nonce := out[5:recordHeaderLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: record nonce: %w", err)
	}
	body := padme.Finish(append(append(out[recordHeaderLen:], 0, 0, 0, 0), plaintext...), 0)
	var adBuf [128]byte
	adb := appendRecordAD(adBuf[:0], &ad, gen)
	sealed := g.data.Seal(body[:0], nonce, body, adb)
	return out[:recordHeaderLen+len(sealed)], nil
}

// Open decrypts a record sealed by Seal under any generation up to the
// current one. It fails with ErrAuth if the ad, the generation or any byte
// differs, and never panics on arbitrary input.
func (rk *RegistryKeys) Open(ad RecordAD, sealed []byte) ([]byte, error) {
	o := RecordOpener{rk: rk}
	return o.Open(&ad, sealed)
}

// A RecordOpener opens records of one registry one after another, into
// buffers it keeps between them: what a reader of millions of records (a
// restore into a database) needs so that opening one allocates nothing.
// Each result aliases the opener's buffer and is overwritten by its next
// Open; the caller clears it when done. Not safe for concurrent use: one
// per goroutine.
type RecordOpener struct {
	rk     *RegistryKeys
	pt, ad []byte
}

// Opener returns a RecordOpener of the registry's keys.
func (rk *RegistryKeys) Opener() *RecordOpener { return &RecordOpener{rk: rk} }

// Open is RegistryKeys.Open, with the same checks and errors, into the
// opener's buffer.
func (o *RecordOpener) Open(ad *RecordAD, sealed []byte) ([]byte, error) {
	rk := o.rk
	if err := rk.checkAD(ad); err != nil {
		return nil, err
	}
	// The description is built only on failure: Open is a hot path. (The
	// id's prefix is passed as a copy, so that ad itself stays off the
	// heap.)
	what := func() string {
		return fmt.Sprintf("record %x version %d in registry %q of %s", [6]byte(ad.BlindID[:6]), ad.Version, rk.name, rk.guest)
	}
	if len(sealed) > 0 && (sealed[0] == formatRecordV1 || sealed[0] == formatRecordV2) {
		return nil, fmt.Errorf("seal: open %s: format %d: %w", what(), sealed[0], ErrOldRecordFormat)
	}
	g, gen, err := rk.framed(sealed, formatRecord, "record", what)
	if err != nil {
		return nil, err
	}
	o.ad = appendRecordAD(o.ad[:0], ad, gen)
	pt, err := openAEAD(g.data, o.pt[:0], sealed, o.ad, what, gen)
	if err != nil {
		return nil, err
	}
	o.pt = pt
	// Authenticated, so a bad padding is a bug or a forger with the key,
	// never noise; it is still refused, so one record has one encoding.
	body, err := padme.Body(pt, 0)
	if err != nil {
		clear(pt)
		return nil, fmt.Errorf("seal: open %s: %w", what(), err)
	}
	return body, nil
}

// framedHeaderLen is the header records and blob chunks share:
// format ‖ generation u32 ‖ nonce.
const framedHeaderLen = 1 + 4 + nonceSize

// framed checks the layout records and blob chunks share — format ‖
// generation u32 ‖ nonce ‖ ciphertext and tag — and returns the keys of
// the generation it names.
func (rk *RegistryKeys) framed(sealed []byte, format byte, kind string, what func() string) (*genKeys, uint32, error) {
	if len(sealed) < framedHeaderLen+tagSize {
		return nil, 0, fmt.Errorf("seal: open %s: %d bytes, shorter than any sealed %s: %w", what(), len(sealed), kind, ErrAuth)
	}
	if sealed[0] != format {
		return nil, 0, fmt.Errorf("seal: open %s: unknown format 0x%02x", what(), sealed[0])
	}
	gen := binary.BigEndian.Uint32(sealed[1:5])
	g, err := rk.generation(gen)
	if err != nil {
		return nil, 0, fmt.Errorf("seal: open %s: %w", what(), err)
	}
	return g, gen, nil
}

// openAEAD opens a framed sealed value (checked by framed) under aead and
// the additional data ad, appending the plaintext to dst.
func openAEAD(aead cipher.AEAD, dst, sealed, ad []byte, what func() string, gen uint32) ([]byte, error) {
	pt, err := aead.Open(dst, sealed[5:framedHeaderLen], sealed[framedHeaderLen:], ad)
	if err != nil {
		return nil, fmt.Errorf("seal: open %s (generation %d): %w", what(), gen, ErrAuth)
	}
	return pt, nil
}

// mac is HMAC-SHA256 under *key of the concatenation of parts; it returns
// zeros once the keys are wiped, so a use after Wipe cannot produce a
// value that looks valid (and Seal fails anyway).
func (rk *RegistryKeys) mac(key *[keySize]byte, parts ...[]byte) [32]byte {
	var out [32]byte
	rk.mu.RLock()
	if rk.err != nil {
		rk.mu.RUnlock()
		return out
	}
	// The read lock is held throughout, so wipe cannot zero the pad
	// states under a MAC in progress.
	defer rk.mu.RUnlock()
	if m := rk.macs[key]; m != nil {
		m.sum(&out, parts...)
	}
	return out
}

// BlindID is the blinded record id a host sees: HMAC-SHA256(K_id, id).
// Stable for a registry's keys, unrelated across registries and guests.
func (rk *RegistryKeys) BlindID(id string) [32]byte {
	return rk.mac(&rk.idKey, []byte(id))
}

// BlindIndex is a blinded index value: HMAC-SHA256(K_index, lp(field) ‖
// value). Equal values of one field give equal outputs, so a host that sees
// them learns the value's frequency, never the value (docs/threat-model.md).
func (rk *RegistryKeys) BlindIndex(field, value string) [32]byte {
	if checkNames(field) != nil {
		return [32]byte{}
	}
	return rk.mac(&rk.indexKey, appendLP(nil, field), []byte(value))
}

// Commit is a keyed commitment to a plaintext: HMAC-SHA256(K_commit,
// plaintext). It is deterministic: equal plaintexts in one registry give
// equal commitments. Where a host sees commitments, prefer CommitRecord.
func (rk *RegistryKeys) Commit(plaintext []byte) [32]byte {
	return rk.mac(&rk.commitKey, plaintext)
}

// CommitRecord is a keyed commitment bound to one record version:
// HMAC-SHA256(K_record-commit, lp(guest) ‖ lp(registry) ‖ blind id ‖
// version u64 ‖ plaintext). Unlike Commit it does not reveal that two
// versions or records hold the same bytes. The epoch is left out so that a
// version resealed in a later epoch keeps its commitment.
func (rk *RegistryKeys) CommitRecord(ad RecordAD, plaintext []byte) [32]byte {
	if rk.checkAD(&ad) != nil {
		return [32]byte{}
	}
	hdr := appendLP(nil, ad.Guest)
	hdr = appendLP(hdr, ad.Registry)
	hdr = append(hdr, ad.BlindID[:]...)
	hdr = binary.BigEndian.AppendUint64(hdr, ad.Version)
	return rk.mac(&rk.recordCommitKey, hdr, plaintext)
}

// VerifyCommit reports in constant time whether c is Commit(plaintext).
func (rk *RegistryKeys) VerifyCommit(plaintext []byte, c [32]byte) bool {
	want := rk.Commit(plaintext)
	return want != [32]byte{} && hmac.Equal(want[:], c[:])
}

// VerifyCommitRecord reports in constant time whether c is
// CommitRecord(ad, plaintext).
func (rk *RegistryKeys) VerifyCommitRecord(ad RecordAD, plaintext []byte, c [32]byte) bool {
	want := rk.CommitRecord(ad, plaintext)
	return want != [32]byte{} && hmac.Equal(want[:], c[:])
}

// Blobs returns the registry's blob keys.
func (rk *RegistryKeys) Blobs() *BlobKeys { return rk.blobs }
