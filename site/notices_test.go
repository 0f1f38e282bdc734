package site_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/extract/offline"
	"github.com/chancery-gov/chancery/services/notice"
	"github.com/chancery-gov/chancery/siteapi"
)

// signNotice has officials sign a notice of class for site in epoch.
func signNotice(t *testing.T, dir, id, class, site string, epoch uint64, officials ...string) []byte {
	t.Helper()
	s := notice.Signed{Notice: notice.Notice{Guest: "demo-republic", ID: id, Class: class, Title: "Notice " + id,
		Body: "The government is operating from abroad.", Lang: "en", IssuedAt: time.Now().UTC().Truncate(time.Second), Epoch: epoch, Site: site}}
	for _, o := range officials {
		sig, err := notice.Sign(&s.Notice, o, officialKey(t, dir, o))
		if err != nil {
			t.Fatal(err)
		}
		s.Signatures = append(s.Signatures, sig)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// feedNotices fetches a feed and verifies every notice it carries with
// the charter alone; it returns the verified notices' ids.
func feedNotices(t *testing.T, v *notice.Verifier, base, path string) ([]string, []*notice.Verified) {
	t.Helper()
	b, err := siteapi.FetchPublic(context.Background(), nil, base, path, nil)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	var ps []*notice.Proven
	if strings.HasSuffix(path, ".atom") {
		// Well-formed XML, to the last token.
		dec := xml.NewDecoder(bytes.NewReader(b))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s%s is not well-formed XML: %v", base, path, err)
			}
		}
		ps, err = notice.ParseAtomProofs(b)
	} else {
		ps, err = notice.ParseJSONProofs(b)
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var vs []*notice.Verified
	for _, p := range ps {
		got, err := v.Verify(p)
		if err != nil {
			t.Fatalf("%s%s: a notice does not verify offline: %v", base, path, err)
		}
		ids = append(ids, got.Signed.Notice.ID)
		vs = append(vs, got)
	}
	return ids, vs
}

// TestNoticesServedByEverySite: the officials publish a quorum-signed
// notice at the home; the home and the standby embassy-north serve it as
// Atom and JSON Feed, each entry verifying offline with the charter alone
// against a checkpoint embassy-north cosigned. A notice without its
// quorum is refused naming what is missing, and nothing is recorded.
func TestNoticesServedByEverySite(t *testing.T) {
	dc := startDrillCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	epoch := dc.home.Local().Log.Epoch()

	short := signNotice(t, dc.dir, "n-short", "continuity", "home", epoch, "cio")
	_, err := dc.registrar.PublishNotice(ctx, short)
	var ae *siteapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || !strings.Contains(ae.Error(), "minister") {
		t.Fatalf("a notice without its quorum: %v, want 422 naming the minister missing", err)
	}
	wrongSite := signNotice(t, dc.dir, "n-north", "emergency", "embassy-north", epoch, "cio")
	if _, err := dc.registrar.PublishNotice(ctx, wrongSite); err == nil || !strings.Contains(err.Error(), "embassy-north") {
		t.Fatalf("a notice signed for another site: %v", err)
	}
	size := dc.home.Local().Log.Size()

	signed := signNotice(t, dc.dir, "n-abroad", "continuity", "home", epoch, "min-interior", "cio")
	rc, err := dc.registrar.PublishNotice(ctx, signed)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Index != size {
		t.Fatalf("the refusals recorded something: the notice is at %d, the ledger had %d entries", rc.Index, size)
	}
	again, err := dc.registrar.PublishNotice(ctx, signed)
	if err != nil || again.Index != rc.Index {
		t.Fatalf("publishing again: %+v %v", again, err)
	}

	v, err := notice.NewVerifier(dc.c)
	if err != nil {
		t.Fatal(err)
	}
	const north = "/guests/demo-republic"
	for _, at := range []struct{ base, prefix string }{{dc.homeURL, ""}, {dc.homeURL, north}, {dc.northURL, north}} {
		for _, path := range []string{"/notices.atom", "/notices.json"} {
			var ids []string
			var vs []*notice.Verified
			until(t, at.base+at.prefix+path+" serves the notice", func() (bool, error) {
				ids, vs = feedNotices(t, v, at.base, at.prefix+path)
				return len(ids) == 1, nil
			})
			if ids[0] != "n-abroad" || vs[0].Cosigned.Writer != "home" || len(vs[0].Cosigned.Cosigners) == 0 || vs[0].Cosigned.Cosigners[0] != "embassy-north" {
				t.Fatalf("%s%s: %v written by %s, cosigned by %v", at.base, path, ids, vs[0].Cosigned.Writer, vs[0].Cosigned.Cosigners)
			}
		}
	}

	// The mirror serves only what it holds: a tampered proof fails.
	b, err := siteapi.FetchPublic(ctx, nil, dc.northURL, north+"/notices.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := notice.ParseJSONProofs(b)
	if err != nil {
		t.Fatal(err)
	}
	ps[0].Index++
	if _, err := v.Verify(ps[0]); err == nil {
		t.Fatal("a notice with a wrong ledger index verified")
	}
}

// TestOnlineExtractCheck: an extract issued at home is not superseded at
// the home nor at the standby embassy-north; after a new version of the
// record both say it is, as of a checkpoint covering the new version.
// The answers carry versions and indexes only, never the record.
func TestOnlineExtractCheck(t *testing.T) {
	dc := startDrillCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := dc.registrar.Extract(ctx, "population", "DR-DRILL-003", "last_name")
	if err != nil {
		t.Fatal(err)
	}
	ov, err := offline.NewVerifier(dc.c)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ov.Verify(out.COSE)
	if err != nil {
		t.Fatal(err)
	}
	cl := rep.Claims
	check := func(base, prefix string) guest.Supersession {
		t.Helper()
		b, err := siteapi.FetchPublic(ctx, nil, base, prefix+"/extract-status", siteapi.ExtractStatusQuery(cl.Registry, cl.RecordIndex, cl.Version))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("Drill3")) || bytes.Contains(b, []byte("DR-DRILL-003")) {
			t.Fatalf("the online check reveals the record: %s", b)
		}
		var st guest.Supersession
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	dc.caughtUp(t)
	for _, at := range [][2]string{{dc.homeURL, ""}, {dc.northURL, "/guests/demo-republic"}} {
		if st := check(at[0], at[1]); st.Superseded || st.Latest != cl.Version {
			t.Fatalf("%s before a new version: %+v", at[0], st)
		}
	}
	rec, err := dc.registrar.Put(ctx, "population", "DR-DRILL-003", json.RawMessage(`{"national_id":"DR-DRILL-003","last_name":"Renamed","first_name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	dc.caughtUp(t)
	for _, at := range [][2]string{{dc.homeURL, ""}, {dc.northURL, "/guests/demo-republic"}} {
		var st guest.Supersession
		until(t, at[0]+" sees the new version", func() (bool, error) {
			st = check(at[0], at[1])
			return st.Superseded, nil
		})
		if st.Latest != rec.Version || st.LatestIndex != rec.Index || st.AsOf <= rec.Index || st.Site == "" {
			t.Fatalf("%s after a new version (%d at %d): %+v", at[0], rec.Version, rec.Index, st)
		}
	}
	// The new version, asked about once later entries have been written
	// after it (its bundle's partial tiles are superseded): latest.
	if _, err := dc.registrar.Put(ctx, "population", "DR-DRILL-004", json.RawMessage(`{"national_id":"DR-DRILL-004","last_name":"Moved","first_name":"Ada"}`)); err != nil {
		t.Fatal(err)
	}
	dc.caughtUp(t)
	cl = &offline.Claims{Registry: "population", Record: "DR-DRILL-003", Version: rec.Version, RecordIndex: rec.Index}
	for _, at := range [][2]string{{dc.homeURL, ""}, {dc.northURL, "/guests/demo-republic"}} {
		if st := check(at[0], at[1]); st.Superseded || st.Latest != rec.Version {
			t.Fatalf("%s on the latest version: %+v", at[0], st)
		}
	}
	cl = rep.Claims
	// Versions written in a burst reach embassy-north in batches: the
	// trees of the sizes in between have no tiles of their own there.
	// Each is answered all the same, from the checkpoint's tree.
	var burst []*registry.Record
	for i := 0; i < 40; i++ {
		r, err := dc.registrar.Put(ctx, "business", fmt.Sprintf("BR-%04d", i), json.RawMessage(fmt.Sprintf(`{"registration_no":"BR-%04d","name":"Renamed %d"}`, i, i)))
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, r)
	}
	for _, r := range burst {
		var b []byte
		until(t, fmt.Sprintf("embassy-north answers for %s version %d at %d", r.ID, r.Version, r.Index), func() (bool, error) {
			b, err = siteapi.FetchPublic(ctx, nil, dc.northURL, "/guests/demo-republic/extract-status", siteapi.ExtractStatusQuery("business", r.Index, r.Version))
			if err != nil && strings.Contains(err.Error(), "422") && strings.Contains(err.Error(), "entries") {
				return false, nil // the (async) version has not reached embassy-north's checkpoint yet
			}
			return err == nil, err
		})
		var st guest.Supersession
		if err := json.Unmarshal(b, &st); err != nil || st.Superseded {
			t.Fatalf("embassy-north on %s: %s", r.ID, b)
		}
	}
	// A wrong version for the entry is refused, naming it.
	_, err = siteapi.FetchPublic(ctx, nil, dc.northURL, "/guests/demo-republic/extract-status", siteapi.ExtractStatusQuery(cl.Registry, cl.RecordIndex, cl.Version+1))
	if err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("a wrong version: %v", err)
	}
}
