package continuity

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
)

// Epochs folds the accepted orders of one guest's ledger, in ledger order,
// into what fencing and replication need: the current epoch, which site
// writes each epoch (and so whose checkpoint key signs it), the ids and
// nonces already used, and the sites revoked.
//
// Epoch 1 is the home's: it is what the home writes before any order (the
// registry writes at max(log epoch, 1)). Each accepted activate opens the
// next epoch with the activated site as writer — also a read-only
// activation, because the active site still appends (access entries,
// notices) and signs the checkpoints of its epoch — and each failback
// opens the next epoch with the site it names.
//
// An Epochs is safe for concurrent use.
type Epochs struct {
	mu      sync.Mutex
	home    string
	writers []string // writers[e-1] writes epoch e
	ids     map[string]bool
	nonces  map[string]bool
	revoked []string
}

// NewEpochs starts the fold for charter c: epoch 1, written by c's home.
func NewEpochs(c *charter.Charter) (*Epochs, error) {
	if c == nil {
		return nil, errors.New("epochs: no charter")
	}
	home, ok := c.Home()
	if !ok {
		return nil, fmt.Errorf("epochs: charter %s v%d has no home site", c.Guest.ID, c.Version)
	}
	return &Epochs{home: home.ID, writers: []string{home.ID}, ids: map[string]bool{}, nonces: map[string]bool{}}, nil
}

// Current is the current epoch.
func (e *Epochs) Current() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return uint64(len(e.writers))
}

// WriterAt returns the site that writes epoch, and false for epoch 0 or an
// epoch not yet opened.
func (e *Epochs) WriterAt(epoch uint64) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if epoch == 0 || epoch > uint64(len(e.writers)) {
		return "", false
	}
	return e.writers[epoch-1], true
}

// HasOrderID reports whether an order with id was folded in.
func (e *Epochs) HasOrderID(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ids[id]
}

// HasNonce reports whether an order with nonce was folded in.
func (e *Epochs) HasNonce(nonce string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nonces[nonce]
}

// Revoked lists the sites revoked so far, in the order of revocation.
func (e *Epochs) Revoked() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.revoked)
}

// State is a snapshot for Verify. Its History reads e as it is when asked.
func (e *Epochs) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stateLocked(e)
}

func (e *Epochs) stateLocked(h History) State {
	return State{Epoch: uint64(len(e.writers)), Writer: e.writers[len(e.writers)-1], Revoked: slices.Clone(e.revoked), History: h}
}

// lockedHistory reads e's maps without taking its lock, for use while the
// caller holds it.
type lockedHistory struct{ e *Epochs }

func (h lockedHistory) HasOrderID(id string) bool  { return h.e.ids[id] }
func (h lockedHistory) HasNonce(nonce string) bool { return h.e.nonces[nonce] }

// Apply folds in an order read from the ledger, where it was verified when
// it was accepted. It checks only what the fold itself needs — a new id
// and nonce, the epoch the order must name — and refuses an order that
// breaks it: the ledger then holds an order that was never acceptable.
func (e *Epochs) Apply(o *Order) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.applyLocked(o)
}

func (e *Epochs) applyLocked(o *Order) error {
	if o == nil {
		return errors.New("epochs: no order")
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("epochs: %w", err)
	}
	cur := uint64(len(e.writers))
	switch {
	case e.ids[o.ID]:
		return fmt.Errorf("epochs: order %s: %w: id already folded in", o.ID, ErrReplayed)
	case e.nonces[o.Nonce]:
		return fmt.Errorf("epochs: order %s: %w: nonce %s already folded in", o.ID, ErrReplayed, o.Nonce)
	case o.Epoch != wantEpoch(o.Action, cur):
		return fmt.Errorf("epochs: order %s: %w: %s names epoch %d, current is %d", o.ID, ErrEpoch, o.Action, o.Epoch, cur)
	}
	e.ids[o.ID], e.nonces[o.Nonce] = true, true
	switch o.Action {
	case charter.ActionActivate, charter.ActionFailback:
		e.writers = append(e.writers, o.Site)
	case charter.ActionRevokeSite:
		if !slices.Contains(e.revoked, o.Site) {
			e.revoked = append(e.revoked, o.Site)
		}
	}
	return nil
}

// Accept verifies so against c and e's current state and, if it takes
// effect, calls commit (which appends it to the ledger; nil for none) and
// folds it in — all under e's lock, so that two submissions of one order
// cannot both be accepted, and a commit that fails leaves e as it was.
func (e *Epochs) Accept(c *charter.Charter, so *SignedOrder, now time.Time, commit func(*Order) error) (*Order, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, err := Verify(c, so, e.stateLocked(lockedHistory{e}), now)
	if err != nil {
		return nil, err
	}
	if commit != nil {
		if err := commit(o); err != nil {
			return nil, fmt.Errorf("order %s: accepted but not recorded: %w", o.ID, err)
		}
	}
	if err := e.applyLocked(o); err != nil {
		return nil, err
	}
	return o, nil
}
