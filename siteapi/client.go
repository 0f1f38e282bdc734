package siteapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/registry"
)

// ErrorBody is the JSON body of every API error.
type ErrorBody struct {
	Error    string `json:"error"`
	Field    string `json:"field,omitempty"`
	Registry string `json:"registry,omitempty"`
	ID       string `json:"id,omitempty"`
}

// APIError is an error answer from a site.
type APIError struct {
	Status int
	ErrorBody
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("site: HTTP %d: %s", e.Status, e.ErrorBody.Error)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// maxAnswer bounds a JSON answer read into memory.
const maxAnswer = 64 << 20

// roundTrip sends req with hc (default http.DefaultClient) and decodes a
// JSON answer into out (if not nil); any status but 2xx is an *APIError.
// Every client of this package ends here, so that every endpoint answers
// errors the same way.
func roundTrip(hc *http.Client, req *http.Request, out any) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("site: %s %s: decode answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	e := &APIError{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e.ErrorBody) != nil || e.ErrorBody.Error == "" {
		e.ErrorBody.Error = strings.TrimSpace(string(b))
		if e.ErrorBody.Error == "" {
			e.ErrorBody.Error = resp.Status
		}
	}
	return e
}

// signedRequest builds a request with an in-memory body, signed by s if
// it is not nil.
func signedRequest(ctx context.Context, s *Signer, method, u string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s != nil {
		if err := s.SignDigest(req, sha256.Sum256(body)); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// Client calls a site's officials' API as one official, signing every
// request.
type Client struct {
	// BaseURL is the guest's API root: the site's URL at a home
	// ("https://127.0.0.1:7001"), or the site's URL plus
	// "/guests/<guest>" at an embassy.
	BaseURL string
	Signer  Signer
	// HTTP is the client to use (default http.DefaultClient).
	HTTP *http.Client
}

func (c *Client) url(path string, q url.Values) string {
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func recordPath(reg, id string) string {
	return "/v1/registries/" + url.PathEscape(reg) + "/records/" + url.PathEscape(id)
}

func (c *Client) do(ctx context.Context, method, u string, body []byte, out any) error {
	req, err := signedRequest(ctx, &c.Signer, method, u, body)
	if err != nil {
		return err
	}
	return roundTrip(c.HTTP, req, out)
}

// PutRequest is the body of PUT .../records/{id}.
type PutRequest struct {
	Record      json.RawMessage   `json:"record"`
	Attachments []AttachmentInput `json:"attachments,omitempty"`
}

// AttachmentInput names one attachment of a new version: either a blob
// uploaded to this site (Ref, the token POST .../blobs returned) or, with
// Keep, the attachment of that name in the record's latest version.
type AttachmentInput struct {
	Name string `json:"name"`
	Ref  string `json:"ref,omitempty"`
	Keep bool   `json:"keep,omitempty"`
}

// BlobResponse is the answer to POST .../blobs.
type BlobResponse struct {
	Ref     string    `json:"ref"`
	Size    int64     `json:"size"`
	Expires time.Time `json:"expires"`
}

// HistoryResponse is the answer to GET .../records/{id}/history.
type HistoryResponse struct {
	Registry string                 `json:"registry"`
	ID       string                 `json:"id"`
	Versions []registry.VersionInfo `json:"versions"`
}

// FindResponse is the answer to GET .../records?field=F&value=V.
type FindResponse struct {
	Registry string             `json:"registry"`
	Records  []*registry.Record `json:"records"`
}

// RegistriesResponse is the answer to GET /v1/registries.
type RegistriesResponse struct {
	Guest      string   `json:"guest"`
	Registries []string `json:"registries"`
}

// Put writes a new version of a record.
func (c *Client) Put(ctx context.Context, reg, id string, record json.RawMessage, atts ...AttachmentInput) (*registry.Record, error) {
	body, err := json.Marshal(PutRequest{Record: record, Attachments: atts})
	if err != nil {
		return nil, err
	}
	var out registry.Record
	if err := c.do(ctx, http.MethodPut, c.url(recordPath(reg, id), nil), body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func asOfQuery(at registry.AsOf) url.Values {
	q := url.Values{}
	if at.Index != nil {
		q.Set("at_index", strconv.FormatUint(*at.Index, 10))
	}
	if at.Time != nil {
		q.Set("at_time", at.Time.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// Get reads a record: the latest version, or the one in force as of a
// ledger index or a time.
func (c *Client) Get(ctx context.Context, reg, id string, at registry.AsOf) (*registry.Record, error) {
	var out registry.Record
	if err := c.do(ctx, http.MethodGet, c.url(recordPath(reg, id), asOfQuery(at)), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete writes a tombstone.
func (c *Client) Delete(ctx context.Context, reg, id string) (*registry.Record, error) {
	var out registry.Record
	if err := c.do(ctx, http.MethodDelete, c.url(recordPath(reg, id), nil), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// History lists every version of a record.
func (c *Client) History(ctx context.Context, reg, id string) ([]registry.VersionInfo, error) {
	var out HistoryResponse
	if err := c.do(ctx, http.MethodGet, c.url(recordPath(reg, id)+"/history", nil), nil, &out); err != nil {
		return nil, err
	}
	return out.Versions, nil
}

// Find returns the live records whose index field has the value.
func (c *Client) Find(ctx context.Context, reg, field, value string) ([]*registry.Record, error) {
	var out FindResponse
	q := url.Values{"field": {field}, "value": {value}}
	if err := c.do(ctx, http.MethodGet, c.url("/v1/registries/"+url.PathEscape(reg)+"/records", q), nil, &out); err != nil {
		return nil, err
	}
	return out.Records, nil
}

// Registries lists the registries the site serves.
func (c *Client) Registries(ctx context.Context) ([]string, error) {
	var out RegistriesResponse
	if err := c.do(ctx, http.MethodGet, c.url("/v1/registries", nil), nil, &out); err != nil {
		return nil, err
	}
	return out.Registries, nil
}

// PutBlob uploads an attachment and returns the token to name it in Put.
// It reads rd twice, once to hash it (the digest is signed before the
// upload starts) and once to send it, so a large file is never held in
// memory.
func (c *Client) PutBlob(ctx context.Context, reg string, rd io.ReadSeeker) (*BlobResponse, error) {
	start, err := rd.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(h, rd)
	if err != nil {
		return nil, fmt.Errorf("site: upload to registry %s: hash: %w", reg, err)
	}
	if _, err := rd.Seek(start, io.SeekStart); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v1/registries/"+url.PathEscape(reg)+"/blobs", nil), io.NopCloser(rd))
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := c.Signer.SignDigest(req, [32]byte(h.Sum(nil))); err != nil {
		return nil, err
	}
	var out BlobResponse
	if err := roundTrip(c.HTTP, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAttachment writes an attachment of a record version to w.
func (c *Client) GetAttachment(ctx context.Context, reg, id, name string, at registry.AsOf, w io.Writer) (int64, error) {
	n, err := c.download(ctx, c.url(recordPath(reg, id)+"/attachments/"+url.PathEscape(name), asOfQuery(at)), w)
	if err != nil {
		return n, fmt.Errorf("site: attachment %s of registry %s record %s: %w", name, reg, id, err)
	}
	return n, nil
}

// download GETs u, signed, and copies a 200 answer's body to w; any other
// status is an *APIError. An error after the first byte comes from the
// copy (a short body): the caller names what it was downloading.
func (c *Client) download(ctx context.Context, u string, w io.Writer) (int64, error) {
	req, err := signedRequest(ctx, &c.Signer, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, decodeError(resp)
	}
	return io.Copy(w, resp.Body)
}

// ExtractRequest is the body of POST …/records/{id}/extract: the record's
// fields the extract certifies.
type ExtractRequest struct {
	Fields []string `json:"fields"`
}

// ExtractResponse is an issued certified extract (docs/extracts.md): the
// COSE_Sign1 with its receipt, and its QR text, QR code and PDF, each of
// which `chancery extract verify` checks offline.
type ExtractResponse struct {
	COSE   []byte `json:"cose"`
	QRText string `json:"qr_text"`
	QRPNG  []byte `json:"qr_png"`
	PDF    []byte `json:"pdf"`
}

// Extract asks the site for a certified extract of a record's latest
// version, certifying fields.
func (c *Client) Extract(ctx context.Context, reg, id string, fields ...string) (*ExtractResponse, error) {
	body, err := json.Marshal(ExtractRequest{Fields: fields})
	if err != nil {
		return nil, err
	}
	var out ExtractResponse
	return &out, c.do(ctx, http.MethodPost, c.url(recordPath(reg, id)+"/extract", nil), body, &out)
}
