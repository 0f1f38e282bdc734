package site

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/siteapi"
)

// The host operator's API. A host state runs the site, so it may see how
// the site is doing — health, capacity, sizes, lag — and may suspend a
// guest, but only as the guest's charter allows (Safeguards.OperatorMay)
// and only after the notice period, and the notice is recorded in the
// guest's own ledger before it takes effect. Every request is signed by the
// host's key from the guest's charter, with the scheme of the officials'
// API (the "official" parameter names the host). Nothing here reaches
// plaintext: the site holds none.

// newHostAuthenticator checks requests signed by the charter's hosts.
// Their nonces are kept durably in the journal at journal.
func newHostAuthenticator(c *charter.Charter, site string, now func() time.Time, maxNonces int, journal string) (*authenticator, error) {
	a := &authenticator{guest: c.Guest.ID, site: site, officials: map[string]authOfficial{}, now: now}
	for i := range c.Hosts {
		h := &c.Hosts[i]
		k, err := h.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.ID, err)
		}
		a.officials[h.ID] = authOfficial{def: &charter.Official{ID: h.ID, Name: h.Name}, key: k}
	}
	var err error
	if a.nonces, err = openNonceCache(journal, maxNonces, now()); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Site) mountOperator(mux *http.ServeMux) {
	mux.HandleFunc("GET /operator/v1/guests/{guest}/status", s.operatorStatus)
	mux.HandleFunc("POST /operator/v1/guests/{guest}/suspend", s.operatorSuspend)
}

// operatorAuth authenticates the host and checks that it runs this site for
// the guest and that the charter grants it power.
func (s *Site) operatorAuth(w http.ResponseWriter, r *http.Request, power string) (*tenant, string, bool) {
	t, ok := s.tenants[r.PathValue("guest")]
	if !ok {
		writeJSON(w, http.StatusNotFound, siteapi.ErrorBody{Error: fmt.Sprintf("guest %q is not held at this site", r.PathValue("guest"))})
		return nil, "", false
	}
	h, err := t.ops.authenticate(r)
	if err != nil {
		// 401, or 503 when the nonce could not be made durable.
		e := toHTTP(err, "", "")
		writeJSON(w, e.status, e.body)
		return nil, "", false
	}
	if h.ID != t.def.Host {
		writeJSON(w, http.StatusForbidden, siteapi.ErrorBody{Error: fmt.Sprintf("host %s does not run site %s of %s", h.ID, t.site, t.id)})
		return nil, "", false
	}
	if !slices.Contains(t.charter.Safeguards.OperatorMay, power) {
		writeJSON(w, http.StatusForbidden, siteapi.ErrorBody{Error: fmt.Sprintf("the charter of %s does not let its hosts %s (safeguards.operator_may)", t.id, power)})
		return nil, "", false
	}
	return t, h.ID, true
}

func (s *Site) operatorStatus(w http.ResponseWriter, r *http.Request) {
	t, _, ok := s.operatorAuth(w, r, charter.OperatorSizes)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.tenantStatus(t))
}

func (s *Site) tenantStatus(t *tenant) siteapi.OperatorStatus {
	_, cp := t.ledger().Checkpoint()
	st := t.receiver().Stats()
	os := siteapi.OperatorStatus{Guest: t.id, Site: t.site, Mode: t.currentMode(), Entries: t.ledger().MirrorSize(), Epoch: t.ledger().Epoch(),
		Checkpoint: cp.Size, UsedBytes: t.receiver().Used(), QuotaBytes: t.quota, Batches: st.Batches, Objects: st.Objects, Refused: st.Refused}
	var sfs unix.Statfs_t
	if unix.Statfs(t.dir, &sfs) == nil {
		os.FreeBytes = int64(sfs.Bavail) * int64(sfs.Bsize)
	}
	if n := t.lastBatch.Load(); n > 0 {
		at := time.Unix(0, n).UTC()
		os.LastBatch = &at
		os.SinceBatch = s.opts.Now().Sub(at).Seconds()
	}
	os.Suspension = t.susp.current()
	os.SuspendedNow = t.suspended(s.opts.Now()) != nil
	return os
}

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
	sh, err := parseSigHeader(sp.Request.Signature)
	if err != nil {
		return nil, fmt.Errorf("suspension notice: %w", err)
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

func (s *Site) operatorSuspend(w http.ResponseWriter, r *http.Request) {
	t, host, ok := s.operatorAuth(w, r, charter.OperatorSuspend)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, siteapi.ErrorBody{Error: "suspend: " + err.Error()})
		return
	}
	var req siteapi.SuspendRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Reason == "" {
		writeJSON(w, http.StatusBadRequest, siteapi.ErrorBody{Error: "suspend: body must be {\"reason\": \"...\"} with a reason", Field: "reason"})
		return
	}
	sh, _ := parseSigHeader(r.Header.Get(siteapi.SignatureHeader))
	given := time.Unix(sh.Unix, 0).UTC()
	sp := &siteapi.Suspension{Guest: t.id, Site: t.site, Host: host, Signed: s.cfg.Site, Reason: req.Reason, GivenAt: given,
		EffectiveAt: given.Add(t.charter.Safeguards.SuspendNoticePeriod()),
		Request:     siteapi.SignedRequest{Method: r.Method, Target: r.RequestURI, Signature: r.Header.Get(siteapi.SignatureHeader), Body: body}}
	if err := t.susp.give(sp); err != nil {
		writeJSON(w, http.StatusConflict, siteapi.ErrorBody{Error: err.Error()})
		return
	}
	s.log.Warn("host gave notice of suspension", "guest", t.id, "host", host, "effective_at", sp.EffectiveAt, "reason", req.Reason)
	writeJSON(w, http.StatusAccepted, sp)
}

// suspended is nil unless a recorded suspension is in effect.
func (t *tenant) suspended(now time.Time) error {
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
