package guest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/siteapi"
)

// VerifySuspension checks, at the writer, that a suspension notice was
// signed by the host that runs the site, for a guest whose charter lets
// hosts suspend, with the charter's notice period.
func VerifySuspension(c *charter.Charter, raw []byte) (*siteapi.Suspension, error) {
	var sp siteapi.Suspension
	if err := json.Unmarshal(raw, &sp); err != nil {
		return nil, fmt.Errorf("suspension notice: %w", err)
	}
	def, ok := c.Site(sp.Site)
	if !ok || sp.Guest != c.Guest.ID {
		return nil, fmt.Errorf("suspension notice for %s/%s: not a site of this charter", sp.Guest, sp.Site)
	}
	if def.Host != sp.Host {
		return nil, fmt.Errorf("suspension notice: host %s does not run site %s", sp.Host, sp.Site)
	}
	if !slices.Contains(c.Safeguards.OperatorMay, charter.OperatorSuspend) {
		return nil, errors.New("suspension notice: the charter does not let hosts suspend")
	}
	h, ok := c.Host(sp.Host)
	if !ok {
		return nil, fmt.Errorf("suspension notice: unknown host %s", sp.Host)
	}
	key, err := h.PublicKey()
	if err != nil {
		return nil, err
	}
	sh, err := siteapi.ParseSignatureHeader(sp.Request.Signature)
	if err != nil {
		return nil, fmt.Errorf("suspension notice: authentication failed: %w", err)
	}
	if sh.Official != sp.Host || sh.Digest != sha256.Sum256(sp.Request.Body) {
		return nil, errors.New("suspension notice: the signature is not the host's over this body")
	}
	msg := siteapi.SigningString(sp.Guest, sp.Signed, sp.Request.Method, sp.Request.Target, sh.Unix, sh.Nonce, sh.DigestHex)
	if !ed25519.Verify(ed25519.PublicKey(key), msg, sh.Sig) {
		return nil, fmt.Errorf("suspension notice: bad signature by host %s", sp.Host)
	}
	var body siteapi.SuspendRequest
	if err := json.Unmarshal(sp.Request.Body, &body); err != nil || body.Reason != sp.Reason {
		return nil, errors.New("suspension notice: the reason is not the one the host signed")
	}
	given := time.Unix(sh.Unix, 0).UTC()
	if d := sp.GivenAt.Sub(given); d > siteapi.MaxSkew || d < -siteapi.MaxSkew {
		return nil, errors.New("suspension notice: given_at is not the signed request's time")
	}
	if sp.EffectiveAt.Before(sp.GivenAt.Add(c.Safeguards.SuspendNoticePeriod())) {
		return nil, fmt.Errorf("suspension notice: effective %s, before the charter's notice period of %s", sp.EffectiveAt, c.Safeguards.SuspendNotice)
	}
	return &sp, nil
}

// NoticeKindSuspension is the kind of the ledger notice recording a host's
// suspension notice.
const NoticeKindSuspension = "host-suspension-notice"

// SuspensionNotice is the payload of that ledger notice.
type SuspensionNotice struct {
	Kind       string              `json:"kind"`
	Digest     string              `json:"digest"`
	Suspension *siteapi.Suspension `json:"suspension"`
}

// suspended is nil unless a recorded suspension is in effect.
func (t *Guest) suspended(now time.Time) error {
	sp := t.susp.current()
	if sp == nil {
		return nil
	}
	if sp.RecordedAt == nil {
		// Not yet in the guest's ledger: look for the writer's notice.
		notices, err := t.notices.all(context.Background())
		if err == nil {
			d := sp.Digest()
			for _, n := range notices {
				var sn SuspensionNotice
				if json.Unmarshal(n.Payload, &sn) == nil && sn.Kind == NoticeKindSuspension && sn.Digest == d {
					t.susp.recorded(n.Index)
					sp = t.susp.current()
					break
				}
			}
		}
	}
	if sp.RecordedAt == nil || now.Before(sp.EffectiveAt) {
		return nil
	}
	return fmt.Errorf("host %s suspended guest %s at site %s from %s (notice recorded at ledger index %d): %s",
		sp.Host, sp.Guest, sp.Site, sp.EffectiveAt.Format(time.RFC3339), *sp.RecordedAt, sp.Reason)
}

// suspensions keeps a guest's suspension notice durably beside its mirror.
type suspensions struct {
	path string
	mu   sync.Mutex
	cur  *siteapi.Suspension
}

// openSuspensions reads the guest's suspension notice, if it has one,
// and believes it only as far as it can be checked: the notice must be
// signed by the host that runs this site for the guest (VerifySuspension
// against the charter's hosts), and the ledger index it names as its
// record must hold the writer's notice of it. The file is only the
// site's memo: a notice that fails the first check is ignored, and one
// that fails the second is taken as not yet recorded (suspended looks it
// up in the ledger again), each with a line in the log saying why — a
// file anyone with the disk could write must not switch a guest off.
func openSuspensions(ctx context.Context, path string, c *charter.Charter, site string, lg *ledger.Log, log *slog.Logger) (*suspensions, error) {
	s := &suspensions{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	sp, err := VerifySuspension(c, b)
	if err == nil && sp.Site != site {
		err = fmt.Errorf("suspension notice: for site %s, not this site (%s)", sp.Site, site)
	}
	if err != nil {
		log.Error("suspension notice ignored: it does not verify against the charter's hosts", "path", path, "err", err)
		return s, nil
	}
	if sp.RecordedAt != nil {
		if err := checkRecorded(ctx, lg, *sp.RecordedAt, sp.Digest()); err != nil {
			log.Error("suspension notice: the ledger entry it names is not its record; not in effect until the record is found", "path", path, "recorded_at", *sp.RecordedAt, "err", err)
			sp.RecordedAt = nil
		}
	}
	s.cur = sp
	return s, nil
}

// checkRecorded checks that the entry at idx of lg is the writer's notice
// of the suspension with digest d.
func checkRecorded(ctx context.Context, lg *ledger.Log, idx uint64, d string) error {
	_, cp := lg.Checkpoint()
	if idx >= cp.Size {
		return fmt.Errorf("ledger index %d is beyond this site's checkpoint of %d entries", idx, cp.Size)
	}
	var found bool
	err := ledger.Scan(ctx, ledger.DirFetcher(lg.Dir()), idx, idx+1, func(i uint64, raw []byte) error {
		if i != idx {
			return nil
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		var sn SuspensionNotice
		if e.Type != ledger.TypeNotice || json.Unmarshal(e.Payload, &sn) != nil || sn.Kind != NoticeKindSuspension {
			return fmt.Errorf("entry %d is not a notice of suspension", idx)
		}
		if sn.Digest != d {
			return fmt.Errorf("entry %d is the notice of another suspension (digest %s, not %s)", idx, sn.Digest, d)
		}
		found = true
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("entry %d not found", idx)
	}
	return err
}

func (s *suspensions) current() *siteapi.Suspension {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	c := *s.cur
	return &c
}

// pending returns the notice while the ledger does not record it yet.
func (s *suspensions) pending() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.RecordedAt != nil {
		return nil
	}
	b, _ := json.Marshal(s.cur)
	return b
}

func (s *suspensions) give(sp *siteapi.Suspension) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return fmt.Errorf("guest %s already has a notice of suspension, given %s", s.cur.Guest, s.cur.GivenAt.Format(time.RFC3339))
	}
	if err := s.save(sp); err != nil {
		return err
	}
	s.cur = sp
	return nil
}

func (s *suspensions) recorded(idx uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.RecordedAt != nil {
		return
	}
	c := *s.cur
	c.RecordedAt = &idx
	if s.save(&c) == nil {
		s.cur = &c
	}
}

func (s *suspensions) save(sp *siteapi.Suspension) error {
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	return fsutil.SyncDir(filepathDir(s.path))
}

func filepathDir(p string) string {
	i := bytes.LastIndexByte([]byte(p), os.PathSeparator)
	if i <= 0 {
		return "."
	}
	return p[:i]
}
