package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/siteapi"
)

// Certified extracts (services/extract, docs/extracts.md) are issued by
// the site where the guest is active, home or activated embassy, through
// the officials' API:
//
//	POST …/v1/registries/{registry}/records/{id}/extract  {"fields": [...]}
//
// The official must be allowed to read the record, and the read is an
// access entry like any other. The act is appended to the ledger; the
// extract's receipt needs a checkpoint covering it that other sites have
// cosigned, which the writer gathers from their replication receipts (it
// waits for them, up to the request's deadline). The answer carries the
// COSE_Sign1, the QR text, the QR code (PNG) and a PDF, all of which
// `chancery extract verify` checks offline with the charter alone.

// extractWait bounds how long an issue waits for the sites' cosignatures.
const extractWait = 20 * time.Second

// extractIssuer builds the guest's issuer over its unsealed state once,
// the first time it is asked.
type extractIssuer struct {
	once sync.Once
	is   *extract.Issuer
	err  error
}

func (e *extractIssuer) get(build func() (*extract.Issuer, error)) (*extract.Issuer, error) {
	e.once.Do(func() { e.is, e.err = build() })
	return e.is, e.err
}

// newExtractIssuer is the issuer of t at this site over sv's keys: the
// state's extract key derived from the root, its newest generation the
// charter publishes.
func newExtractIssuer(t *tenant, sv *guest.Served, now func() time.Time) (*extract.Issuer, error) {
	sk, _, err := sv.Local.Charter.StateKeyFor("extract")
	if err != nil {
		return nil, err
	}
	signer, err := sv.Local.Keys.StateSigner("extract", seal.StateAlgEdDSA, sk.Generation)
	if err != nil {
		return nil, err
	}
	return extract.NewIssuer(extract.IssuerOptions{
		Charter: sv.Local.Charter, Signer: signer, Generation: sk.Generation, Site: t.Site(), Log: sv.Local.Log,
		Cosigned: func(ctx context.Context, size uint64) ([]byte, error) { return cosignedCheckpoint(ctx, t, size) },
		Now:      now,
	})
}

// cosignedCheckpoint waits until the sites' receipts cosign one
// checkpoint of at least size entries, and returns that checkpoint with
// the writer's signature and every cosignature on it. Receipts of
// different sites for the same checkpoint merge: each is the writer's
// signed note with one site's cosignature line added.
func cosignedCheckpoint(ctx context.Context, t *tenant, size uint64) ([]byte, error) {
	repl := t.Replicator()
	if repl == nil {
		return nil, errors.New("this site ships to no other site (replication disabled): no site can cosign the extract's checkpoint")
	}
	need := 1
	for _, r := range t.Charter().Registries {
		need = max(need, r.QuorumSites)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if note, n := guest.MergeReceipts(repl.Tracker().Receipts(), size); n >= need {
			return note, nil
		}
		select {
		case <-ctx.Done():
			var seen []string
			for _, l := range repl.Tracker().Receipts() {
				seen = append(seen, fmt.Sprintf("%s at %d", l.Site, l.Size))
			}
			return nil, fmt.Errorf("the act is in the ledger, but fewer than %d other sites have cosigned a checkpoint of %d entries yet (receipts: %s): %w",
				need, size, strings.Join(seen, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

// issueExtract serves POST …/records/{id}/extract.
func (g *officialsAPI) issueExtract(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	reg, id := r.PathValue("registry"), r.PathValue("id")
	if g.currentMode() != siteapi.ModeActive || g.readOnly {
		g.fail(w, r, newHTTPError(http.StatusServiceUnavailable, "", "extracts are issued where the guest is active and writable; this site is "+string(g.currentMode())), reg, id)
		return
	}
	var req siteapi.ExtractRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "", "request body: "+err.Error()), reg, id)
		return
	}
	if len(req.Fields) == 0 {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "fields", "required: the record's fields the extract certifies"), reg, id)
		return
	}
	rec, err := g.local.Registries.Get(r.Context(), reg, id, registry.AsOf{})
	if err == nil && rec.Deleted {
		err = fmt.Errorf("%s record %s is deleted: %w", reg, id, registry.ErrNotFound)
	}
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	var all map[string]any
	if err := json.Unmarshal(rec.Data, &all); err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	fields := map[string]any{}
	for _, f := range req.Fields {
		v, ok := all[f]
		if !ok {
			g.fail(w, r, newHTTPError(http.StatusBadRequest, "fields", fmt.Sprintf("%s record %s has no field %q", reg, id, f)), reg, id)
			return
		}
		fields[f] = v
	}
	if !g.recorded(w, r, o, &guest.Read{Kind: continuity.AccessRecord, Registry: reg, ID: id, Records: []*registry.Record{rec}}) {
		return
	}
	is, err := g.extracts()
	if err != nil {
		g.fail(w, r, newHTTPError(http.StatusServiceUnavailable, "", "extracts: "+err.Error()), reg, id)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), extractWait)
	defer cancel()
	out, err := is.Issue(ctx, extract.Request{Registry: reg, Record: id, Version: rec.Version, Index: rec.Index, Fields: fields})
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		if errors.Is(err, ledger.ErrStaleEpoch) {
			status = http.StatusConflict
		}
		g.fail(w, r, newHTTPError(status, "", "issue extract: "+err.Error()), reg, id)
		return
	}
	ex := out[0]
	text, png, err := is.Render(ex)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	pdf, err := extract.PDF(ex, text, png)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	writeJSON(w, http.StatusOK, siteapi.ExtractResponse{COSE: ex.COSE, QRText: text, QRPNG: png, PDF: pdf})
}
