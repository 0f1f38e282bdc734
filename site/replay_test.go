package site_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/siteapi"
)

// TestReplayAcrossRestart: a signed PUT and a signed DELETE, captured and
// sent again after the site restarts inside the skew window, are refused
// as replays: the nonces are on disk, not only in the old process's memory.
func TestReplayAcrossRestart(t *testing.T) {
	ts := startSite(t)
	key := officialKey(t, ts.dir, "registrar")
	body, _ := json.Marshal(siteapi.PutRequest{Record: person("DR-7", "Berg", "")})
	put := putReq(t, ts, "DR-7", body)
	if err := siteapi.SignRequest(put, "demo-republic", "home", "registrar", key); err != nil {
		t.Fatal(err)
	}
	putHeader := put.Header.Clone()
	if status, eb := send(t, ts, put); status != http.StatusCreated {
		t.Fatalf("first PUT: %d %q", status, eb.Error)
	}
	del, _ := http.NewRequest(http.MethodDelete, ts.srv.URL+"/v1/registries/population/records/DR-7", nil)
	if err := siteapi.SignRequest(del, "demo-republic", "home", "registrar", key); err != nil {
		t.Fatal(err)
	}
	delHeader := del.Header.Clone()
	if status, eb := send(t, ts, del); status >= 300 {
		t.Fatalf("first DELETE: %d %q", status, eb.Error)
	}

	ts.stop(t)
	ts.start(t)

	// The DELETE replayed first: were it accepted, the PUT replay after
	// it would bring the record back.
	again, _ := http.NewRequest(http.MethodDelete, ts.srv.URL+"/v1/registries/population/records/DR-7", nil)
	again.Header = delHeader
	if status, eb := send(t, ts, again); status != http.StatusUnauthorized || !strings.Contains(eb.Error, "replayed") {
		t.Fatalf("DELETE replayed after a restart: %d %q, want 401 replayed", status, eb.Error)
	}
	againPut := putReq(t, ts, "DR-7", body)
	againPut.Header = putHeader
	if status, eb := send(t, ts, againPut); status != http.StatusUnauthorized || !strings.Contains(eb.Error, "replayed") {
		t.Fatalf("PUT replayed after a restart: %d %q, want 401 replayed", status, eb.Error)
	}
	// A fresh request still works.
	fresh := putReq(t, ts, "DR-8", []byte(mustJSON(t, siteapi.PutRequest{Record: person("DR-8", "Berg", "")})))
	if err := siteapi.SignRequest(fresh, "demo-republic", "home", "registrar", key); err != nil {
		t.Fatal(err)
	}
	if status, eb := send(t, ts, fresh); status != http.StatusCreated {
		t.Fatalf("fresh PUT after restart: %d %q", status, eb.Error)
	}
}

// TestReplayJournalTornAndDamaged: a last line cut short by a crash is
// dropped (its request was never acted on); a damaged line before good
// ones stops the site from opening, naming the file and the line.
func TestReplayJournalTornAndDamaged(t *testing.T) {
	ts := startSite(t)
	key := officialKey(t, ts.dir, "registrar")
	body := []byte(mustJSON(t, siteapi.PutRequest{Record: person("DR-9", "Berg", "")}))
	put := putReq(t, ts, "DR-9", body)
	if err := siteapi.SignRequest(put, "demo-republic", "home", "registrar", key); err != nil {
		t.Fatal(err)
	}
	h := put.Header.Clone()
	if status, eb := send(t, ts, put); status != http.StatusCreated {
		t.Fatalf("PUT: %d %q", status, eb.Error)
	}
	journal := filepath.Join(ts.dir, "sites", "home", "replay-officials.log")
	ts.stop(t)
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("the journal is not where the test expects it: %v", err)
	}
	f.WriteString("99999999999 registrar torn-") // no newline: a torn append
	f.Close()
	ts.start(t)
	again := putReq(t, ts, "DR-9", body)
	again.Header = h
	if status, eb := send(t, ts, again); status != http.StatusUnauthorized || !strings.Contains(eb.Error, "replayed") {
		t.Fatalf("replay after a torn journal tail: %d %q", status, eb.Error)
	}
	ts.stop(t)
	b, _ := os.ReadFile(journal)
	if strings.Contains(string(b), "torn-") {
		t.Fatal("the torn line is still in the journal")
	}
	os.WriteFile(journal, append([]byte("garbage\n"), b...), 0o600)
	if _, err = openHome(ts.dir, ts.logs); err == nil || !strings.Contains(err.Error(), "replay-officials.log: line 1 is damaged") {
		t.Fatalf("open with a damaged journal: %v", err)
	}
	// Reopen cleanly for the cleanup's Close.
	os.WriteFile(journal, b, 0o600)
	ts.start(t)
}
