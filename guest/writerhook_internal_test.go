package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/registry"
)

// busyWriter is an Options.Writer that writes a record every millisecond
// until its context ends, as the PostgreSQL connector does when its
// source is busy.
type busyWriter struct {
	started, closed atomic.Int32
	mu              sync.Mutex
	ctx             context.Context
	lastErr         error
}

func (b *busyWriter) start(ctx context.Context, l *Local) io.Closer {
	b.started.Add(1)
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			id := fmt.Sprintf("DR-BUSY-%d", i)
			_, err := l.Registries.Put(context.Background(), "business", id, json.RawMessage(fmt.Sprintf(`{"registration_no":%q,"name":"Busy"}`, id)), nil)
			if err != nil {
				b.mu.Lock()
				b.lastErr = err
				b.mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	})
	return closerFunc(func() error { wg.Wait(); b.closed.Add(1); return nil })
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// TestWriterStopsAtFence: Options.Writer starts once the activated
// embassy is unsealed; an accepted failback order cancels it as it fences
// — the hand-over is held back, so nothing else stops it — and nothing it
// writes lands after the order in the ledger (the registries refuse with
// ErrFenced); Close waits for it.
func TestWriterStopsAtFence(t *testing.T) {
	b := &busyWriter{}
	f := startGuestFixtureWith(t, Options{Writer: b.start}, false)
	ctx := context.Background()
	if n := b.started.Load(); n != 1 {
		t.Fatalf("writer started %d times at an unsealed active embassy, want 1", n)
	}
	time.Sleep(20 * time.Millisecond)
	b.mu.Lock()
	if b.lastErr != nil {
		t.Fatalf("the writer could not write while active: %v", b.lastErr)
	}
	b.mu.Unlock()
	f.g.workMu.Lock()
	f.g.closing = true // hold back the hand-over
	f.g.workMu.Unlock()
	so := f.order(t, continuity.Order{Action: charter.ActionFailback, Site: "home", Epoch: 3, Reason: "writer fence test"}, "min-interior", "cio")
	_, idx, err := f.g.Submit(ctx, so, false)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	wctx := b.ctx
	b.mu.Unlock()
	if wctx.Err() == nil {
		t.Fatal("the writer's context is live after the failback order fenced the site")
	}
	time.Sleep(30 * time.Millisecond)
	if size := f.g.Ledger().Size(); size != idx+1 {
		t.Fatalf("ledger holds %d entries after the failback order at %d: the writer appended after the order that ended its epoch", size, idx)
	}
	if _, err := f.g.Served().Local.Registries.Put(ctx, "business", "DR-LATE", json.RawMessage(`{"registration_no":"DR-LATE","name":"Late"}`), nil); !errors.Is(err, registry.ErrFenced) {
		t.Fatalf("a write at a fenced site: %v, want ErrFenced", err)
	}
	if err := f.g.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.closed.Load(); n != 1 {
		t.Fatalf("writer closed %d times by Close, want 1", n)
	}
}
