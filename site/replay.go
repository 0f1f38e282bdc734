package site

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/siteapi"
)

// The replay journal makes the nonce cache survive a restart or a crash.
//
// A signed request is good for MaxSkew either side of its time; a nonce
// that only the memory of the process remembered could be replayed after
// a restart inside that window. So every nonce is appended, with the time
// it may be forgotten, to a journal file in the guest's directory and the
// journal is fsynced before the request is acted on; the journal is read
// back at start. Concurrent requests share one fsync (group commit).
//
// A durable "started at" (refuse everything signed before the last start)
// was the other way. It is not correct under clock skew: an official
// whose clock runs two minutes slow would be refused for two minutes
// after every restart, and a site whose clock was stepped back across a
// restart would refuse everyone, or, stepped forward, nothing would bound
// it at all. The journal depends only on the site's own clock, the same
// one that checks the window: an entry is dropped only once the window
// check would refuse its request anyway.

// nonceJournal is the append-only file of one authenticator's nonces.
// Each line is "<forget-at unix seconds> <official> <nonce>\n". Fields
// never hold a space: official ids are charter ids and nonces canonical
// base64 (siteapi.ParseSignatureHeader checks both).
type nonceJournal struct {
	path  string
	f     *os.File
	lines int   // lines in the file, live or expired: compacted when mostly expired
	size  int64 // bytes of whole lines in the file
	// broken is set when a failed append could not be cut off again: no
	// more is appended (the requests are refused) until a restart, which
	// cuts the partial line as a torn tail.
	broken error
}

// compactAfter is how many expired lines a journal may hold before it is
// rewritten with only the live ones.
const compactAfter = 4096

// openNonceJournal reads the journal at path into seen (keeping the
// nonces not yet expired at now) and opens it for appending. A last line
// cut short is a crash in the middle of an append whose request was never
// acted on: it is cut off. Any other malformed line is damage, and the
// site refuses to start rather than forget a nonce.
func openNonceJournal(path string, seen map[string]time.Time, now time.Time) (*nonceJournal, error) {
	b, err := os.ReadFile(path)
	created := errors.Is(err, fs.ErrNotExist)
	if err != nil && !created {
		return nil, fmt.Errorf("replay journal %s: %w", path, err)
	}
	j := &nonceJournal{path: path}
	good := bytes.LastIndexByte(b, '\n') + 1
	var lines []string
	if good > 0 {
		lines = strings.Split(string(b[:good-1]), "\n")
	}
	for i, line := range lines {
		forget, key, ok := parseJournalLine(line)
		if !ok {
			return nil, fmt.Errorf("replay journal %s: line %d is damaged (%q): the site cannot tell which signed requests it has already acted on; once it has been stopped for more than %s none of them can be replayed, and the file may be moved aside", path, i+1, line, siteapi.MaxSkew+time.Second)
		}
		j.lines++
		if now.Before(forget) {
			if old, ok := seen[key]; !ok || old.Before(forget) {
				seen[key] = forget
			}
		}
	}
	if j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
		return nil, fmt.Errorf("replay journal %s: %w", path, err)
	}
	if created {
		// The file's own fsyncs do not make its name durable.
		if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
			j.f.Close()
			return nil, fmt.Errorf("replay journal %s: %w", path, err)
		}
	}
	j.size = int64(good)
	if good < len(b) {
		// The torn tail of an append that was never synced, so never
		// acknowledged: cut it off before appending after it.
		if err := j.f.Truncate(int64(good)); err != nil {
			j.f.Close()
			return nil, fmt.Errorf("replay journal %s: cut a torn last line: %w", path, err)
		}
	}
	return j, nil
}

func parseJournalLine(line string) (time.Time, string, bool) {
	ts, key, ok := strings.Cut(line, " ")
	if !ok {
		return time.Time{}, "", false
	}
	official, nonce, ok := strings.Cut(key, " ")
	if !ok || official == "" || nonce == "" || strings.Contains(nonce, " ") {
		return time.Time{}, "", false
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(unix, 0), nonceKey(official, nonce), true
}

// nonceKey is how the cache and the journal name a nonce: per official,
// so that one official cannot use up another's.
func nonceKey(official, nonce string) string { return official + " " + nonce }

// append writes one nonce to the file, not yet synced.
func (j *nonceJournal) append(key string, forget time.Time) error {
	if j.broken != nil {
		return j.broken
	}
	line := strconv.FormatInt(forget.Unix(), 10) + " " + key + "\n"
	if _, err := j.f.Write([]byte(line)); err != nil {
		// A short write (a full disk) leaves part of a line, which the
		// next append would turn into a damaged line: cut it off.
		err = fmt.Errorf("replay journal %s: %w", j.path, err)
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("%w (and cutting the partial line failed: %v; restart the site)", err, terr)
		}
		return err
	}
	j.lines++
	j.size += int64(len(line))
	return nil
}

// compact rewrites the journal with only the live nonces, durably, and
// swaps the open file. Everything appended before is then durable too.
func (j *nonceJournal) compact(seen map[string]time.Time) error {
	var b bytes.Buffer
	for k, forget := range seen {
		b.WriteString(strconv.FormatInt(forget.Unix(), 10) + " " + k + "\n")
	}
	if err := fsutil.Replace(j.path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("replay journal %s: compact: %w", j.path, err)
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("replay journal %s: %w", j.path, err)
	}
	// The old file may be in a sync that another request waits on; it
	// fails once closed, and that request finds its nonce durable here.
	j.f.Close()
	j.f = f
	j.lines = len(seen)
	j.size = int64(b.Len())
	j.broken = nil
	return nil
}

func (j *nonceJournal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil // a Site may be closed twice
	return err
}
