package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// The writer's side of site outer key rotation (docs/seal.md § Site key
// rotation). In normal times the home is the writer, and it seals every
// chunk it ships to a standby embassy under that embassy's outer key: the
// nonce budget is spent there. So the home counts those seals durably,
// per key generation, in D/keys/site-outer-<site>.sealed, and when fewer
// than Options.OuterRotateBelow remain (or officials order it) draws
// generation g+1, records the KeySiteKey event, and ships every later
// pack under it. Packs already at the embassy stay under the generation
// they were shipped under; no nonce is spent under an old key after the
// switch, which is all the budget needs. The escrow therefore holds every
// generation, newest first, so that an activation hands the embassy all
// the keys its copy needs (seal.SiteKey.Retain).

// sealCountBlock is how many seals one write of a count file reserves:
// a crash loses at most this many seals of count, and errs early.
const sealCountBlock = 1 << 14

// sealCountFile is the name of the file that holds how many values the
// home sealed under a site's current outer key.
func sealCountFile(site string) string { return "site-outer-" + site + ".sealed" }

// sealCount is a count file's content: a count for one key generation,
// named by its fingerprint, so that a count never applies to another.
type sealCount struct {
	KeyID      string `json:"key_id"`
	Generation uint32 `json:"generation"`
	Sealed     uint64 `json:"sealed"`
}

// writeSealCount records that key id, generation gen, has sealed at most
// n values.
func writeSealCount(l state.Layout, site string, id [32]byte, gen uint32, n uint64) error {
	b, err := json.Marshal(sealCount{KeyID: hex.EncodeToString(id[:]), Generation: gen, Sealed: n})
	if err != nil {
		return err
	}
	if err := fsutil.Replace(filepath.Join(l.Keys(), sealCountFile(site)), b, 0o600); err != nil {
		return fmt.Errorf("seal count of site %s's outer key: %w", site, err)
	}
	return nil
}

// armSealCount makes k, site's current outer key at the home, count its
// seals durably: it adds the count on record and persists it ahead of
// use from then on (seal.SiteKey.ReserveAhead). known is false when no
// count is on record for this key (a home from before counts were kept,
// a lost or damaged file, a key adopted from an embassy's rotation): the
// key's past is unknown, and the caller must rotate it.
func armSealCount(l state.Layout, site string, k *seal.SiteKey) (known bool, err error) {
	id := k.ID()
	c, known, err := readSealCount(l, site, id)
	if err != nil {
		return false, err
	}
	k.CountSealed(c.Sealed)
	k.ReserveAhead(c.Sealed, sealCountBlock, func(upTo uint64) error { return writeSealCount(l, site, id, c.Generation, upTo) })
	return known, nil
}

// readSealCount is the count on record for key id (known false, and a
// zero count, if the file is missing, damaged or counts another key).
func readSealCount(l state.Layout, site string, id [32]byte) (c sealCount, known bool, err error) {
	b, err := os.ReadFile(filepath.Join(l.Keys(), sealCountFile(site)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sealCount{}, false, nil
	case err != nil:
		return sealCount{}, false, fmt.Errorf("seal count of site %s's outer key: %w", site, err)
	}
	if json.Unmarshal(b, &c) != nil || c.KeyID != hex.EncodeToString(id[:]) {
		return sealCount{}, false, nil
	}
	return c, true, nil
}

// rotateStandbyKey draws generation g+1 of site's outer key at the home
// (cur is generation g, the one the home ships under) and returns it,
// armed to count its seals. In order, each step safe to cut short:
//
//  1. the escrow gets the new generation's wrapped copy in front of the
//     ones it holds (an extra generation nobody announced is harmless: it
//     opens nothing);
//  2. a count of 0 is recorded for the new key;
//  3. the KeySiteKey event is appended (a restart finds it);
//  4. the key store's copy is replaced by the new one. A home cut between
//     3 and 4 adopts the ledger's generation from its escrow at its next
//     unseal (adoptRotatedOuterKeys), with the count of step 2.
func rotateStandbyKey(ctx context.Context, l state.Layout, keys *seal.Keyring, lg *ledger.Log, guest, site string, cur *seal.SiteKey, order [32]byte, appendEvent func(context.Context, seal.KeyEvent) error) (*seal.SiteKey, error) {
	fail := func(err error) (*seal.SiteKey, error) {
		return nil, fmt.Errorf("rotate the outer key of site %s at the writer: %w", site, err)
	}
	last, _, err := lastSiteKeyEvent(ctx, lg, guest, site)
	if err != nil {
		return fail(err)
	}
	// The count file knows the current key's generation before the
	// ledger publishes its event: a rotation soon after another must not
	// reuse its number.
	gen := last.Generation
	if c, ok, err := readSealCount(l, site, cur.ID()); err != nil {
		return fail(err)
	} else if ok {
		gen = max(gen, c.Generation)
	}
	next, wrapped, ev, err := keys.RotateSiteKey(site, gen, order)
	if err != nil {
		return fail(err)
	}
	ok := false
	defer func() {
		if !ok {
			next.Wipe()
		}
	}()
	escrow, err := escrowWithCurrent(l, keys, site, cur)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(EscrowDir(l), 0o700); err != nil {
		return fail(err)
	}
	if err := fsutil.Replace(filepath.Join(EscrowDir(l), OuterKeyFile(site)), append(append([]byte{}, wrapped...), escrow...), 0o600); err != nil {
		return fail(fmt.Errorf("escrow: %w", err))
	}
	if err := writeSealCount(l, site, next.ID(), gen+1, 0); err != nil {
		return fail(err)
	}
	if err := appendEvent(ctx, ev); err != nil {
		return fail(fmt.Errorf("record the key event: %w", err))
	}
	if err := fsutil.Replace(filepath.Join(l.Keys(), OuterKeyFile(site)), wrapped, 0o600); err != nil {
		return fail(err)
	}
	if _, err := armSealCount(l, site, next); err != nil {
		return fail(err)
	}
	ok = true
	return next, nil
}

// escrowWithCurrent is the escrow's wrapped copies of site's key, with
// the current generation's (from the key store) added if it lacks it: the
// embassy holds packs under it, so the escrow must keep it.
func escrowWithCurrent(l state.Layout, keys *seal.Keyring, site string, cur *seal.SiteKey) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(EscrowDir(l), OuterKeyFile(site)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("escrow: %w", err)
	}
	if i := wrappedIndex(keys, site, b, cur.ID()); i >= 0 {
		return b, nil
	}
	w, err := os.ReadFile(filepath.Join(l.Keys(), OuterKeyFile(site)))
	if err != nil {
		return nil, fmt.Errorf("key store: %w", err)
	}
	if wrappedIndex(keys, site, w, cur.ID()) < 0 {
		return nil, errors.New("the key store does not hold the generation shipped under")
	}
	return append(w, b...), nil
}

// wrappedIndex is the position of the wrapped copy of key id in a file of
// copies laid end to end, or -1.
func wrappedIndex(keys *seal.Keyring, site string, file []byte, id [32]byte) int {
	ks, err := keys.UnwrapSiteKeys(site, file)
	if err != nil {
		return -1
	}
	at := -1
	for i, k := range ks {
		if at < 0 && k.ID() == id {
			at = i
		}
		k.Wipe()
	}
	return at
}

// standbyRotationLocked settles the home's outer key of an embassy it
// ships to: it rotates when fewer than Options.OuterRotateBelow seals
// remain, when the key's count is unknown, or when officials ordered it
// (a request file). Only the writer rotates (its ledger is no mirror).
// Under t.mu; a.local is set.
func (t *Guest) standbyRotationLocked(ctx context.Context, a *activation, site string, known bool, order *[32]byte) {
	if t.def.Role != charter.RoleHome || a.local == nil || t.log.IsMirror() {
		return
	}
	cur, ok := a.outer.get(site)
	if !ok || cur == nil {
		return
	}
	l := a.local.Layout
	below := t.outerRotateBelow()
	var why [32]byte
	req := filepath.Join(l.Keys(), rotateRequestFile(site))
	if b, err := os.ReadFile(req); err == nil && len(b) == len(why) {
		copy(why[:], b)
	} else if order != nil {
		why = *order
	} else if known && cur.Remaining() >= below {
		return
	}
	epoch, lg := a.epoch, t.log
	next, err := rotateStandbyKey(ctx, l, a.local.Keys, lg, t.id, site, cur, why, func(ctx context.Context, ev seal.KeyEvent) error {
		return t.appendKeyEvent(ctx, lg, ev, epoch)
	})
	if err != nil {
		t.logger.Error("the outer key of a site shipped to did not rotate; shipping goes on under the current generation until its budget is spent", "guest", t.id, "site", site, "remaining", cur.Remaining(), "err", err)
		return
	}
	_ = os.Remove(req)
	t.logger.Warn("rotated the outer key of a site shipped to: later packs go under the new generation, earlier ones stay under theirs", "guest", t.id, "site", site, "remaining_before", cur.Remaining(), "known_count", known)
	a.outer.set(site, next) // wipes the old generation here; the escrow keeps it
}

// rotateStandbyOnOrder acts at the home on a rotate-keys order naming an
// embassy: the writer rotates the key it ships to that site under now, or
// at its next unseal if it holds no keys.
func (t *Guest) rotateStandbyOnOrder(ctx context.Context, o *continuity.Order) {
	order := orderHash(o)
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	if a == nil || a.local == nil || a.outer == nil {
		if t.rootFile == "" {
			return
		}
		l := state.Layout{Dir: filepath.Dir(filepath.Dir(t.rootFile))}
		if err := fsutil.Replace(filepath.Join(l.Keys(), rotateRequestFile(o.Site)), order[:], 0o600); err != nil {
			t.logger.Error("rotate-keys: cannot mark the request", "guest", t.id, "site", o.Site, "err", err)
		}
		return
	}
	t.standbyRotationLocked(ctx, a, o.Site, true, &order)
}

// handedOuterKeysLocked unwraps the outer keys handed over at unseal. A
// site's escrow may hold several generations (its writer rotated the key
// while it stood by, and its copy holds packs under each): the one the
// ledger's newest KeySiteKey event names is the key, the others are
// retained for opening only. Under t.mu.
func (t *Guest) handedOuterKeysLocked(ctx context.Context, keys *seal.Keyring, a *activation) error {
	if len(a.wrapped) == 0 {
		return nil
	}
	evs, err := siteKeyEvents(ctx, t.log, t.id)
	if err != nil {
		return err
	}
	for site, w := range a.wrapped {
		ks, err := keys.UnwrapSiteKeys(site, w)
		if err != nil {
			return fmt.Errorf("outer key of site %s handed over at unseal: %w", site, err)
		}
		cur := 0
		if ev, ok := evs[site]; ok {
			for i, k := range ks {
				if k.ID() == ev.KeyID {
					cur = i
					break
				}
			}
		}
		k := ks[cur]
		k.Retain(append(ks[:cur:cur], ks[cur+1:]...)...)
		a.outer.set(site, k)
	}
	return nil
}

// orderHash is what a key event records of the order that asked for it.
func orderHash(o *continuity.Order) [32]byte {
	raw, _ := (&continuity.SignedOrder{Order: *o}).Marshal()
	return sha256.Sum256(raw)
}

// outerRotateBelow is Options.OuterRotateBelow, or its default.
func (t *Guest) outerRotateBelow() uint64 {
	if t.opts.OuterRotateBelow == 0 {
		return DefaultOuterRotateBelow
	}
	return t.opts.OuterRotateBelow
}

// appendKeyEvent appends a key event to l, the ledger this site writes
// in epoch.
func (t *Guest) appendKeyEvent(ctx context.Context, l *ledger.Log, ev seal.KeyEvent, epoch uint64) error {
	p, err := ev.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = l.Append(ctx, ledger.Entry{Type: ledger.TypeKeyEvent, Epoch: epoch, Time: t.opts.Now(), Payload: p})
	return err
}
