package site_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

func apiErr(t *testing.T, err error, status int) *siteapi.APIError {
	t.Helper()
	var ae *siteapi.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v, want an API error with status %d", err, status)
	}
	if ae.Status != status {
		t.Fatalf("got status %d (%s), want %d", ae.Status, ae.ErrorBody.Error, status)
	}
	return ae
}

func person(id, last, extra string) json.RawMessage {
	return json.RawMessage(`{"national_id":"` + id + `","last_name":"` + last + `","first_name":"` + extra + `"}`)
}

func TestRecordLifecycle(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	c := ts.client(t, "registrar")

	v1, err := c.Put(ctx, "population", "DR-0001", person("DR-0001", "Novak", "Ivo"))
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.Registry != "population" || v1.ID != "DR-0001" {
		t.Fatalf("first put: %+v", v1)
	}
	if _, err := c.Put(ctx, "population", "DR-0002", person("DR-0002", "Novak", "Eva")); err != nil {
		t.Fatal(err)
	}
	// v1 and v2 at distinct milliseconds for the as-of-time read: wait
	// until the site's clock (this process's) has passed v1's millisecond.
	for !time.Now().Truncate(time.Millisecond).After(v1.Time) {
		time.Sleep(100 * time.Microsecond)
	}
	v2, err := c.Put(ctx, "population", "DR-0001", person("DR-0001", "Horak", "Ivo"))
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Index <= v1.Index {
		t.Fatalf("second put: %+v after %+v", v2, v1)
	}

	got, err := c.Get(ctx, "population", "DR-0001", registry.AsOf{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !strings.Contains(string(got.Data), "Horak") {
		t.Fatalf("latest: %+v %s", got, got.Data)
	}
	idx := v1.Index
	old, err := c.Get(ctx, "population", "DR-0001", registry.AsOf{Index: &idx})
	if err != nil {
		t.Fatal(err)
	}
	if old.Version != 1 || !strings.Contains(string(old.Data), "Novak") {
		t.Fatalf("as of index %d: %+v %s", idx, old, old.Data)
	}
	at := v1.Time
	old, err = c.Get(ctx, "population", "DR-0001", registry.AsOf{Time: &at})
	if err != nil {
		t.Fatal(err)
	}
	if old.Version != 1 {
		t.Fatalf("as of time %s: version %d", at, old.Version)
	}
	before := v1.Time.Add(-time.Hour)
	_, err = c.Get(ctx, "population", "DR-0001", registry.AsOf{Time: &before})
	apiErr(t, err, http.StatusNotFound)

	// Find follows the latest version: DR-0001 left "Novak" for "Horak".
	recs, err := c.Find(ctx, "population", "last_name", "Novak")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "DR-0002" {
		t.Fatalf("find Novak: %+v", recs)
	}
	recs, err = c.Find(ctx, "population", "national_id", "DR-0001")
	if err != nil || len(recs) != 1 || recs[0].Version != 2 {
		t.Fatalf("find DR-0001: %+v, %v", recs, err)
	}

	del, err := c.Delete(ctx, "population", "DR-0001")
	if err != nil {
		t.Fatal(err)
	}
	if !del.Deleted || del.Version != 3 {
		t.Fatalf("delete: %+v", del)
	}
	_, err = c.Delete(ctx, "population", "DR-0001")
	apiErr(t, err, http.StatusConflict)
	_, err = c.Delete(ctx, "population", "DR-9999")
	apiErr(t, err, http.StatusNotFound)

	hist, err := c.History(ctx, "population", "DR-0001")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 3 || hist[0].Version != 1 || !hist[2].Deleted {
		t.Fatalf("history: %+v", hist)
	}
	recs, err = c.Find(ctx, "population", "last_name", "Horak")
	if err != nil || len(recs) != 0 {
		t.Fatalf("find after delete: %+v, %v", recs, err)
	}
	// The tombstone hides nothing of the past.
	idx = v2.Index
	old, err = c.Get(ctx, "population", "DR-0001", registry.AsOf{Index: &idx})
	if err != nil || old.Version != 2 {
		t.Fatalf("as of before the delete: %+v, %v", old, err)
	}

	names, err := c.Registries(ctx)
	if err != nil || len(names) != 11 { // the Demo Republic's five, the procedures' cases and pensions, the identity services' eid-crl and passkeys, the PostgreSQL connector's civil-service and connector-state
		t.Fatalf("registries: %v, %v", names, err)
	}
}

func TestAttachments(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	c := ts.client(t, "registrar")
	deed := make([]byte, 3<<20) // several chunks
	rand.Read(deed)
	up, err := c.PutBlob(ctx, "land", bytes.NewReader(deed))
	if err != nil {
		t.Fatal(err)
	}
	if up.Size != int64(len(deed)) || up.Ref == "" {
		t.Fatalf("upload: %+v", up)
	}
	parcel := json.RawMessage(`{"parcel_id":"P-17","owner_id":"DR-0001","area_m2":812}`)
	v1, err := c.Put(ctx, "land", "P-17", parcel, siteapi.AttachmentInput{Name: "deed.pdf", Ref: up.Ref})
	if err != nil {
		t.Fatal(err)
	}
	if len(v1.Attachments) != 1 || v1.Attachments[0].Size != int64(len(deed)) {
		t.Fatalf("put with attachment: %+v", v1)
	}
	var buf bytes.Buffer
	if _, err := c.GetAttachment(ctx, "land", "P-17", "deed.pdf", registry.AsOf{}, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), deed) {
		t.Fatal("downloaded attachment differs from the upload")
	}

	// A new version keeps the deed and adds a survey.
	survey := []byte("survey of parcel 17")
	up2, err := c.PutBlob(ctx, "land", bytes.NewReader(survey))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.Put(ctx, "land", "P-17", parcel, siteapi.AttachmentInput{Name: "deed.pdf", Keep: true}, siteapi.AttachmentInput{Name: "survey.txt", Ref: up2.Ref})
	if err != nil {
		t.Fatal(err)
	}
	if len(v2.Attachments) != 2 {
		t.Fatalf("v2 attachments: %+v", v2.Attachments)
	}
	buf.Reset()
	if _, err := c.GetAttachment(ctx, "land", "P-17", "deed.pdf", registry.AsOf{}, &buf); err != nil || !bytes.Equal(buf.Bytes(), deed) {
		t.Fatalf("kept deed: %v", err)
	}
	buf.Reset()
	if _, err := c.GetAttachment(ctx, "land", "P-17", "survey.txt", registry.AsOf{}, &buf); err != nil || buf.String() != string(survey) {
		t.Fatalf("survey: %q, %v", buf.String(), err)
	}
	idx := v1.Index
	_, err = c.GetAttachment(ctx, "land", "P-17", "survey.txt", registry.AsOf{Index: &idx}, &buf)
	apiErr(t, err, http.StatusNotFound)

	// A token names its registry: it cannot link the blob elsewhere.
	_, err = c.Put(ctx, "business", "B-1", json.RawMessage(`{"registration_no":"B-1"}`), siteapi.AttachmentInput{Name: "deed.pdf", Ref: up.Ref})
	if ae := apiErr(t, err, http.StatusBadRequest); ae.Field != "attachments[0].ref" {
		t.Fatalf("field %q", ae.Field)
	}
	// Uploads beyond the limit are refused.
	big := make([]byte, 9<<20)
	_, err = c.PutBlob(ctx, "land", bytes.NewReader(big))
	apiErr(t, err, http.StatusRequestEntityTooLarge)
}

func TestValidationNamesTheField(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	c := ts.client(t, "registrar")
	if _, err := c.Put(ctx, "population", "DR-1", person("DR-1", "Berg", "Tom")); err != nil {
		t.Fatal(err)
	}
	badIndex := "x"
	cases := []struct {
		name   string
		call   func() error
		status int
		field  string
	}{
		{"missing index field", func() error {
			_, err := c.Put(ctx, "population", "DR-2", json.RawMessage(`{"national_id":"DR-2"}`))
			return err
		}, 400, "last_name"},
		{"index field of the wrong type", func() error {
			_, err := c.Put(ctx, "population", "DR-2", json.RawMessage(`{"national_id":"DR-2","last_name":{"a":1}}`))
			return err
		}, 400, "last_name"},
		{"record missing", func() error {
			_, err := c.Put(ctx, "population", "DR-2", nil)
			return err
		}, 400, "record"},
		{"id too long", func() error {
			id := strings.Repeat("9", 300)
			_, err := c.Put(ctx, "population", id, person(id, "Berg", ""))
			return err
		}, 400, "id"},
		{"bad attachment name", func() error {
			_, err := c.Put(ctx, "population", "DR-1", person("DR-1", "Berg", ""), siteapi.AttachmentInput{Name: "a/b", Ref: "x"})
			return err
		}, 400, "attachments[0].name"},
		{"forged blob token", func() error {
			_, err := c.Put(ctx, "population", "DR-1", person("DR-1", "Berg", ""), siteapi.AttachmentInput{Name: "scan", Ref: "AQAAAAAAAAAAQ0hSRgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
			return err
		}, 400, "attachments[0].ref"},
		{"keep without an earlier attachment", func() error {
			_, err := c.Put(ctx, "population", "DR-1", person("DR-1", "Berg", ""), siteapi.AttachmentInput{Name: "scan", Keep: true})
			return err
		}, 400, "attachments[0].keep"},
		{"find on a field that is not indexed", func() error {
			_, err := c.Find(ctx, "population", "first_name", "Tom")
			return err
		}, 400, "first_name"},
		{"find without a field", func() error {
			_, err := c.Find(ctx, "population", "", "Tom")
			return err
		}, 400, "field"},
		{"unknown registry", func() error {
			_, err := c.Put(ctx, "taxes", "T-1", json.RawMessage(`{}`))
			return err
		}, 404, ""},
		{"unknown record", func() error {
			_, err := c.Get(ctx, "population", "DR-404", registry.AsOf{})
			return err
		}, 404, ""},
		{"record too large", func() error {
			_, err := c.Put(ctx, "population", "DR-1", person("DR-1", "Berg", strings.Repeat("x", 300<<10)))
			return err
		}, 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ae := apiErr(t, tc.call(), tc.status)
			if ae.Field != tc.field {
				t.Errorf("field %q, want %q (error %q)", ae.Field, tc.field, ae.ErrorBody.Error)
			}
		})
	}
	// Query parameters are checked too.
	for _, q := range []struct{ query, field string }{{"at_index=" + badIndex, "at_index"}, {"at_time=yesterday", "at_time"}} {
		req, _ := http.NewRequest(http.MethodGet, ts.srv.URL+"/v1/registries/population/records/DR-1?"+q.query, nil)
		if err := siteapi.SignRequest(req, "demo-republic", "home", "registrar", officialKey(t, ts.dir, "registrar")); err != nil {
			t.Fatal(err)
		}
		resp, err := ts.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body siteapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body.Field != q.field || body.Registry != "population" || body.ID != "DR-1" {
			t.Errorf("%s: status %d, body %+v", q.query, resp.StatusCode, body)
		}
	}
}

func TestPolicy(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	if _, err := ts.client(t, "notary").Put(ctx, "population", "DR-1", person("DR-1", "Berg", "")); err != nil {
		t.Fatalf("a notary who is also registrar may write: %v", err)
	}
	minister := ts.client(t, "min-interior")
	_, err := minister.Put(ctx, "population", "DR-2", person("DR-2", "Berg", ""))
	apiErr(t, err, http.StatusForbidden)
	_, err = minister.PutBlob(ctx, "population", bytes.NewReader([]byte("x")))
	apiErr(t, err, http.StatusForbidden)
	if _, err := minister.Get(ctx, "population", "DR-1", registry.AsOf{}); err != nil {
		t.Fatalf("a minister may read: %v", err)
	}
}

// The request log names the official, method, route and status, and
// never a record id or a value from a record.
func TestRequestLogHoldsNoContent(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	c := ts.client(t, "registrar")
	if _, err := c.Put(ctx, "population", "DR-77120", person("DR-77120", "Sorensen", "Astrid")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Find(ctx, "population", "last_name", "Sorensen"); err != nil {
		t.Fatal(err)
	}
	logs := ts.logs.String()
	for _, secret := range []string{"DR-77120", "Sorensen", "Astrid", testPass} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"official":"registrar"`, `"method":"PUT"`, `"path":"/v1/registries/population/records/{id}"`, `"status":201`, `"latency":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}
