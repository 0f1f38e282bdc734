package replica_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/replica"
)

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestPackUploadStreamed: a 200 MB pack upload is streamed to disk while
// it is hashed, not read into memory (the heap grows by far less than the
// upload), a pack whose content is not its name is refused with 422, and
// a body declared above the 1 GiB cap is refused at once with a 413 that
// says why.
func TestPackUploadStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB")
	}
	f := newFixture(t, fixtureOptions{})
	r, _ := f.freshReceiver("embassy-north", 0)
	srv := httptest.NewServer(f.serve(r))
	t.Cleanup(srv.Close)
	url := srv.URL + "/replica/v1/guests/" + f.guest + "/blobs/population/data/" + strings.Repeat("ab", 32)

	const size = 200 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest(http.MethodPut, url, io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "does not match its name") {
		t.Fatalf("200 MB pack whose hash is not its name: %d %s, want 422", resp.StatusCode, body)
	}
	// Client and server share this process: both sides together.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("a %d MB upload allocated %d MB: the body was held in memory", size>>20, grew>>20)
	}
	t.Logf("a %d MB upload allocated %.1f MB in client and server together", size>>20, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))

	// Declared too large: refused before a byte of the body is read.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", strings.TrimPrefix(url, srv.URL), int64(replica.MaxObjectBytes)+1)
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	var eb struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&eb)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(eb.Error, "above the 1073741824-byte limit") {
		t.Fatalf("pack declared above the cap: %d %q, want 413 naming the limit", resp.StatusCode, eb.Error)
	}
}
