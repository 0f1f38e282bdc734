package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/services/extract/offline"
	"github.com/chancery-gov/chancery/services/notice"
	"github.com/chancery-gov/chancery/siteapi"
)

// Public notices (services/notice, docs/notices.md) are signed offline by
// the officials the charter's services.notices.classes name, recorded by
// the site where the guest is active as ledger entries of type notice,
// and served by every site that holds the ledger, standby included: each
// with its inclusion proof against a checkpoint cosigned as the charter
// requires, so a reader verifies it with the charter alone.
//
// They share the entry type with the continuity notices (Notices): a
// public notice is one whose payload notice.Parse accepts.

// NoticeFeed is what a site serves as the guest's public notices.
type NoticeFeed struct {
	// Feed names the guest; the server fills in URL.
	Feed notice.Feed
	// Notices are the notices proven here, newest first.
	Notices []*notice.Proven
	// Checkpoint is the size of the cosigned checkpoint they are proven
	// against (0 when there is none yet).
	Checkpoint uint64
	// Pending counts the notices recorded in this site's ledger but not
	// yet covered by a checkpoint cosigned by enough sites: they are
	// served once one is.
	Pending int
	// Why says why notices are pending, when some are.
	Why string
}

// NoticeConfig reads the charter's services.notices, refusing a charter
// that sets no class (no notice could then be issued).
func (t *Guest) NoticeConfig() (notice.Config, error) {
	var cfg notice.Config
	ok, err := t.charter.Service("notices", &cfg)
	if err != nil {
		return cfg, err
	}
	if !ok || len(cfg.Classes) == 0 {
		return cfg, fmt.Errorf("charter v%d of %s sets no notice classes (services.notices.classes)", t.charter.Version, t.id)
	}
	return cfg, nil
}

// PublishNotice records a quorum-signed public notice in the ledger this
// site writes and returns its ledger index. The notice must be of this
// guest, signed for this site and the epoch it writes, and carry the
// quorum of its class; a refusal (a *RefusedError) names what is missing.
// Publishing the same signed notice again returns its index; another
// notice with a used id is refused.
func (t *Guest) PublishNotice(ctx context.Context, s *notice.Signed) (uint64, error) {
	cfg, err := t.NoticeConfig()
	if err != nil {
		return 0, &RefusedError{Msg: err.Error()}
	}
	if s.Notice.Guest != t.id {
		return 0, &RefusedError{Msg: fmt.Sprintf("notice %s: of guest %q, this is %s", s.Notice.ID, s.Notice.Guest, t.id)}
	}
	if _, err := notice.Quorum(t.charter, cfg, s); err != nil {
		return 0, &RefusedError{Msg: err.Error()}
	}
	t.mu.Lock()
	a, l := t.act, t.log
	t.mu.Unlock()
	if m := t.currentMode(); m != siteapi.ModeActive || a == nil || a.readOnly {
		return 0, &RefusedError{Msg: fmt.Sprintf("notice %s: notices are recorded where the guest is active and writable; %s is %s at site %s", s.Notice.ID, t.id, m, t.site)}
	}
	if s.Notice.Site != t.site {
		return 0, &RefusedError{Msg: fmt.Sprintf("notice %s: signed for site %s, this is %s (the site is part of what the officials signed)", s.Notice.ID, s.Notice.Site, t.site)}
	}
	if ep := l.Epoch(); s.Notice.Epoch != ep {
		return 0, &RefusedError{Msg: fmt.Sprintf("notice %s: signed for epoch %d, site %s writes epoch %d", s.Notice.ID, s.Notice.Epoch, t.site, ep)}
	}
	raw, err := s.Marshal()
	if err != nil {
		return 0, &RefusedError{Msg: err.Error()}
	}
	// The check for a used id reads the published tree: wait until it
	// holds every entry appended so far, and let no other publication in
	// between the check and the append.
	t.noticeMu.Lock()
	defer t.noticeMu.Unlock()
	if _, _, err := l.WaitPublished(ctx, l.Size()); err != nil {
		return 0, fmt.Errorf("notice %s: wait for the ledger's checkpoint: %w", s.Notice.ID, err)
	}
	held, err := t.publicNotices(ctx)
	if err != nil {
		return 0, err
	}
	for _, h := range held {
		if h.signed.Notice.ID != s.Notice.ID {
			continue
		}
		if bytes.Equal(h.raw, raw) {
			return h.index, nil
		}
		return 0, &RefusedError{Msg: fmt.Sprintf("notice %s: a different notice with this id is already at ledger index %d", s.Notice.ID, h.index)}
	}
	e, err := s.Entry()
	if err != nil {
		return 0, &RefusedError{Msg: err.Error()}
	}
	idx, err := l.Append(ctx, e)
	if err != nil {
		return 0, fmt.Errorf("notice %s: record in the ledger of %s: %w", s.Notice.ID, t.id, err)
	}
	return idx, nil
}

// heldNotice is a public notice entry of the ledger.
type heldNotice struct {
	index  uint64
	raw    []byte
	signed *notice.Signed
}

// publicNotices picks the public notices out of the guest's notice
// entries, in ledger order.
func (t *Guest) publicNotices(ctx context.Context) ([]heldNotice, error) {
	ns, err := t.Notices(ctx)
	if err != nil {
		return nil, fmt.Errorf("notices of %s: %w", t.id, err)
	}
	var out []heldNotice
	for _, n := range ns {
		s, err := notice.Parse(n.Payload)
		if err != nil {
			continue // a continuity notice (suspension, take-over), not a public one
		}
		out = append(out, heldNotice{index: n.Index, raw: n.Payload, signed: s})
	}
	return out, nil
}

// PublicNotices lists the guest's public notices this site holds, newest
// first, each proven against a checkpoint cosigned as the charter requires
// (services.notices.cosigners, at least 1): at the writer its newest
// checkpoint with the receipts the other sites returned, at a mirror the
// writer's checkpoint it holds with its own cosignature.
func (t *Guest) PublicNotices(ctx context.Context) (*NoticeFeed, error) {
	f := &NoticeFeed{Feed: notice.Feed{Guest: t.id, Name: t.charter.Guest.Name, HomePage: "https://" + t.charter.Guest.Origin}}
	if f.Feed.Name == "" {
		f.Feed.Name = t.id
	}
	cfg, err := t.NoticeConfig()
	if err != nil {
		return f, nil // no classes: no public notice can be valid here
	}
	held, err := t.publicNotices(ctx)
	if err != nil || len(held) == 0 {
		return f, err
	}
	need := max(cfg.Cosigners, 1)
	signed, why := t.cosignedForNotices(held[0].index+1, need)
	var cs *offline.Cosigned
	if signed != nil {
		sites, err := offline.NewSites(t.charter)
		if err != nil {
			return nil, err
		}
		if cs, err = sites.Open(signed, need); err != nil {
			cs, why = nil, err.Error()
		}
	}
	if cs == nil {
		f.Pending, f.Why = len(held), why
		return f, nil
	}
	size := cs.Checkpoint.Size
	prover := ledger.NewProver(ledger.DirFetcher(t.ledger().Dir()), 8)
	for i := len(held) - 1; i >= 0; i-- {
		h := held[i]
		if h.index >= size {
			f.Pending++
			f.Why = fmt.Sprintf("the newest checkpoint cosigned by %d sites has %d entries", need, size)
			continue
		}
		path, err := prover.Inclusion(ctx, h.index, size)
		if err != nil {
			return nil, fmt.Errorf("notice %s: inclusion proof of entry %d in checkpoint %d: %w", h.signed.Notice.ID, h.index, size, err)
		}
		p := &notice.Proven{Signed: h.raw, Index: h.index, TreeSize: size, Checkpoint: string(signed)}
		for _, x := range path {
			p.Path = append(p.Path, x[:])
		}
		f.Notices = append(f.Notices, p)
	}
	f.Checkpoint = size
	return f, nil
}

// cosignedForNotices returns a signed checkpoint of at least size entries
// with as many cosignatures as this site knows, or nil and why not.
func (t *Guest) cosignedForNotices(size uint64, need int) ([]byte, string) {
	if repl := t.replicator(); repl != nil {
		cp, n := MergeReceipts(repl.Tracker().Receipts(), size)
		if n < need {
			return nil, fmt.Sprintf("the writer %s holds receipts of %d sites for a checkpoint of at least %d entries, the charter requires %d", t.site, n, size, need)
		}
		return cp, ""
	}
	signed, cp := t.ledger().Checkpoint()
	if cp.Size < size || len(signed) == 0 {
		return nil, fmt.Sprintf("site %s holds a checkpoint of %d entries, the notices need %d", t.site, cp.Size, size)
	}
	out, err := t.cosign(signed)
	if err != nil {
		return nil, err.Error()
	}
	return out, ""
}

// cosign adds this site's cosignature to a writer's signed checkpoint: a
// mirror vouches for the checkpoint it checked when it accepted it.
func (t *Guest) cosign(signed []byte) ([]byte, error) {
	body, sigs, ok := strings.Cut(string(signed), "\n\n")
	if !ok {
		return nil, errors.New("signed checkpoint: no signature block")
	}
	own, err := note.Sign(&note.Note{Text: body + "\n"}, t.cosigner)
	if err != nil {
		return nil, fmt.Errorf("cosign checkpoint: %w", err)
	}
	line := strings.TrimPrefix(string(own), body+"\n\n")
	if strings.Contains(sigs, line) {
		return signed, nil
	}
	return []byte(body + "\n\n" + sigs + line), nil
}

// MergeReceipts finds, among the replication receipts a writer holds, the
// checkpoint of at least size entries cosigned by the most sites, and
// returns it with all their cosignatures and their number. Receipts of
// different sites for the same checkpoint merge: each is the writer's
// signed note with one site's cosignature line added.
func MergeReceipts(lags []replica.SiteStatus, size uint64) ([]byte, int) {
	type group struct {
		body  string
		lines []string
	}
	groups := map[string]*group{}
	var best *group
	for _, l := range lags {
		if l.Size < size || len(l.Receipt) == 0 {
			continue
		}
		body, sigs, ok := strings.Cut(string(l.Receipt), "\n\n")
		if !ok {
			continue
		}
		g := groups[body]
		if g == nil {
			g = &group{body: body}
			groups[body] = g
		}
		for _, line := range strings.SplitAfter(sigs, "\n") {
			if line != "" && !slices.Contains(g.lines, line) {
				g.lines = append(g.lines, line)
			}
		}
		if best == nil || len(g.lines) > len(best.lines) {
			best = g
		}
	}
	if best == nil {
		return nil, 0
	}
	// One line is the writer's signature; the rest are cosignatures.
	return []byte(best.body + "\n\n" + strings.Join(best.lines, "")), len(best.lines) - 1
}
