package siteapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/chancery-gov/chancery/services/procedure"
)

// The officials' procedures API (docs/procedures.md):
//
//	GET  /v1/procedures                        the charter's procedures
//	POST /v1/cases                             open a case {"procedure", "input"}
//	GET  /v1/cases/{case}                      a case (an access entry)
//	POST /v1/cases/{case}/steps                a signed step (procedure.Submission)
//	GET  /v1/queue?role=R                      open cases waiting for role R
//	GET  /v1/cases/{case}/payment-file         a payment run's pain.001 file
//	GET  /v1/cases/{case}/approval             an approved run's approval
//	POST /v1/cases/{case}/payment-file/check   is this file the approved one?

// ProceduresResponse is the answer to GET /v1/procedures.
type ProceduresResponse struct {
	Guest      string                 `json:"guest"`
	Procedures []*procedure.Procedure `json:"procedures"`
}

// StartCaseRequest is the body of POST /v1/cases. The starter is the
// official who signs the request, never a member of the body.
type StartCaseRequest struct {
	Procedure string          `json:"procedure"`
	Input     json.RawMessage `json:"input"`
}

// CaseResponse is a case as the API returns it: the case record, the
// ledger position of its latest version, and the step it waits for (none
// once decided) with the claim an official signs to act on it.
type CaseResponse struct {
	Guest   string          `json:"guest"`
	Case    *procedure.Case `json:"case"`
	Version uint64          `json:"version"`
	Index   uint64          `json:"index"`
	Waiting *procedure.Step `json:"waiting,omitempty"`
}

// Claim is what official signs to act on the step the case waits for.
func (r *CaseResponse) Claim(official string) (procedure.StepClaim, error) {
	if r.Case == nil || r.Waiting == nil {
		return procedure.StepClaim{}, fmt.Errorf("case: takes no more steps")
	}
	return procedure.StepClaim{Guest: r.Guest, Case: r.Case.ID, Procedure: r.Case.Procedure, Step: r.Waiting.ID, Subject: r.Case.Subject, Official: official}, nil
}

// QueueItem is one open case in a queue: the step it waits for, the
// role that signs it, how many signatures it needs (Signatures) and has
// (Signed), and the subject the signers sign.
type QueueItem struct {
	Case       string `json:"case"`
	Procedure  string `json:"procedure"`
	Title      string `json:"title"`
	Step       string `json:"step"`
	Role       string `json:"role,omitempty"`
	Signatures int    `json:"signatures,omitempty"`
	Signed     int    `json:"signed"`
	Starter    string `json:"starter"`
	Opened     string `json:"opened"`
	Subject    string `json:"subject"`
	Version    uint64 `json:"version"`
}

// QueueResponse is the answer to GET /v1/queue?role=R.
type QueueResponse struct {
	Role  string      `json:"role"`
	Cases []QueueItem `json:"cases"`
}

// CheckResponse is the answer to POST …/payment-file/check when the file
// is the approved one; any other file is refused (422, field "file").
type CheckResponse struct {
	Approved bool                `json:"approved"`
	Digest   string              `json:"digest"`
	Approval *procedure.Approval `json:"approval"`
}

func casePath(id string) string { return "/v1/cases/" + url.PathEscape(id) }

// Procedures lists the charter's declared procedures.
func (c *Client) Procedures(ctx context.Context) (*ProceduresResponse, error) {
	var out ProceduresResponse
	return &out, c.do(ctx, http.MethodGet, c.url("/v1/procedures", nil), nil, &out)
}

// StartCase opens a case of procedure proc with input, as the signing
// official.
func (c *Client) StartCase(ctx context.Context, proc string, input json.RawMessage) (*CaseResponse, error) {
	body, err := json.Marshal(StartCaseRequest{Procedure: proc, Input: input})
	if err != nil {
		return nil, fmt.Errorf("start case of %s: input: %w", proc, err)
	}
	var out CaseResponse
	return &out, c.do(ctx, http.MethodPost, c.url("/v1/cases", nil), body, &out)
}

// Case reads a case.
func (c *Client) Case(ctx context.Context, id string) (*CaseResponse, error) {
	var out CaseResponse
	return &out, c.do(ctx, http.MethodGet, c.url(casePath(id), nil), nil, &out)
}

// SubmitStep posts a signed step.
func (c *Client) SubmitStep(ctx context.Context, sub *procedure.Submission) (*CaseResponse, error) {
	body, err := procedure.MarshalSubmission(sub)
	if err != nil {
		return nil, err
	}
	var out CaseResponse
	return &out, c.do(ctx, http.MethodPost, c.url(casePath(sub.Case)+"/steps", nil), body, &out)
}

// Queue lists the open cases waiting for a step role signs.
func (c *Client) Queue(ctx context.Context, role string) (*QueueResponse, error) {
	var out QueueResponse
	return &out, c.do(ctx, http.MethodGet, c.url("/v1/queue", url.Values{"role": {role}}), nil, &out)
}

// PaymentFile downloads a payment run's pain.001 file.
func (c *Client) PaymentFile(ctx context.Context, caseID string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := c.download(ctx, c.url(casePath(caseID)+"/payment-file", nil), &limitedWriter{w: &buf, n: maxAnswer}); err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, fmt.Errorf("site: payment file of case %s: %w", caseID, err)
	}
	return buf.Bytes(), nil
}

// limitedWriter refuses more than n bytes: a file read into memory is
// bounded like a JSON answer.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// Approval reads an approved payment run's approval, what a bank checks
// the file against offline (procedure.VerifyPaymentFile).
func (c *Client) Approval(ctx context.Context, caseID string) (*procedure.Approval, error) {
	var out procedure.Approval
	return &out, c.do(ctx, http.MethodGet, c.url(casePath(caseID)+"/approval", nil), nil, &out)
}

// CheckPaymentFile asks the site whether file is the one approved in
// case caseID.
func (c *Client) CheckPaymentFile(ctx context.Context, caseID string, file []byte) (*CheckResponse, error) {
	var out CheckResponse
	return &out, c.do(ctx, http.MethodPost, c.url(casePath(caseID)+"/payment-file/check", nil), file, &out)
}
