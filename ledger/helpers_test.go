package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "ledger.test.example/log"

type testKey struct {
	signer   note.Signer
	vkey     string
	verifier note.Verifier
}

func newTestKey(t testing.TB, name string) testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, vkey, err := NewLogSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseVerifierKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{s, vkey, v}
}

func openTestLog(t testing.TB, dir string, k testKey) *Log {
	t.Helper()
	l, err := Open(context.Background(), dir, Options{Origin: testOrigin, Signer: k.signer, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testEntry(i int, epoch uint64) Entry {
	return Entry{Type: Type(1 + i%7), Epoch: epoch, Time: time.UnixMilli(1_700_000_000_000 + int64(i)), Payload: []byte(fmt.Sprintf("entry %d payload", i))}
}

// appendConcurrently appends n entries from g goroutines and returns the
// encoded entries by index.
func appendConcurrently(t testing.TB, l *Log, n, g int, epoch uint64) map[uint64][]byte {
	t.Helper()
	var mu sync.Mutex
	got := map[uint64][]byte{}
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += g {
				e := testEntry(i, epoch)
				idx, err := l.Append(context.Background(), e)
				if err != nil {
					errs <- err
					return
				}
				b, _ := e.MarshalBinary()
				mu.Lock()
				got[idx] = b
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return got
}
