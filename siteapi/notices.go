package siteapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Public notices, the online check of an extract, and messages to
// citizens (docs/notices.md, docs/extracts.md).
//
// Public, on every site of the guest (standby included), under the guest's
// prefix (/guests/<guest>, and the root at a home):
//
//	GET …/notices.atom       the public notices as Atom (RFC 4287)
//	GET …/notices.json       the same as JSON Feed 1.1
//	GET …/extract-status?registry=R&record_index=N&version=V
//
// Officials' API, at the site where the guest is active:
//
//	POST …/v1/notices        body: a signed notice (services/notice.Signed)
//	POST …/v1/messages       body: MessageRequest

// NoticeReceipt is the answer to POST …/v1/notices.
type NoticeReceipt struct {
	ID    string `json:"id"`
	Index uint64 `json:"ledger_index"`
}

// MessageRequest is the body of POST …/v1/messages.
type MessageRequest struct {
	// Person is the citizen's person id (their population register record).
	Person  string `json:"person"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
	Lang    string `json:"lang,omitempty"`
}

// MessageReceipt is the answer to POST …/v1/messages: what the official
// may know of the message sent.
type MessageReceipt struct {
	ID              string `json:"id"`
	Version         uint64 `json:"version"`
	Index           uint64 `json:"ledger_index"`
	SealedToCitizen bool   `json:"sealed_to_citizen,omitempty"`
}

// PublishNotice sends a quorum-signed notice (its JSON as
// services/notice.Signed.Marshal writes it) to be recorded.
func (c *Client) PublishNotice(ctx context.Context, signed []byte) (*NoticeReceipt, error) {
	var out NoticeReceipt
	return &out, c.do(ctx, http.MethodPost, c.url("/v1/notices", nil), signed, &out)
}

// SendMessage sends a message to a citizen.
func (c *Client) SendMessage(ctx context.Context, m MessageRequest) (*MessageReceipt, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out MessageReceipt
	return &out, c.do(ctx, http.MethodPost, c.url("/v1/messages", nil), body, &out)
}

// maxFeed bounds a notices feed read by FetchPublic.
const maxFeed = 32 << 20

// FetchPublic GETs one of a guest's public documents (a notices feed, an
// extract status) from base, the guest's public root, unauthenticated.
func FetchPublic(ctx context.Context, hc *http.Client, base, path string, q url.Values) ([]byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %w", path, decodeError(resp))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFeed+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if len(b) > maxFeed {
		return nil, fmt.Errorf("GET %s: more than %d bytes", path, maxFeed)
	}
	return b, nil
}

// ExtractStatusQuery is the query of GET …/extract-status.
func ExtractStatusQuery(registry string, recordIndex, version uint64) url.Values {
	return url.Values{"registry": {registry}, "record_index": {strconv.FormatUint(recordIndex, 10)}, "version": {strconv.FormatUint(version, 10)}}
}
