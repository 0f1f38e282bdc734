package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"
)

// Tessera batching. The POSIX driver queues Add calls and sequences a batch
// (writing entry bundles, tiles and the tree state, each fsynced) when the
// batch reaches maxSize entries or its first entry is maxAge old.
//
// With N closed-loop appenders at most N entries are ever outstanding, so a
// maxSize larger than N (the default is 256) means every batch waits for the
// maxAge timer (default 250ms), capping throughput at about N/maxAge
// regardless of disk speed. By default the benchmark therefore sets
// maxSize = N, which flushes a batch the moment every waiting appender has
// submitted — the best closed-loop setting for Tessera — and keeps the
// default maxAge. Pass -tessera.batch-size=256 to measure the library
// defaults instead.
var (
	tesseraBatchSize = flag.Uint("tessera.batch-size", 0,
		"Tessera batch max size; 0 means the number of concurrent appenders")
	tesseraBatchAge = flag.Duration("tessera.batch-age", tessera.DefaultBatchMaxAge,
		"Tessera batch max age")
	tesseraCheckpointInterval = flag.Duration("tessera.checkpoint-interval", time.Second,
		"Tessera checkpoint publish interval (not on the durability path; bounds shutdown time)")
)

func init() {
	register(system{name: "tessera", open: openTessera})
	// Tessera logs every log initialisation at INFO through klog, which
	// would interleave with the benchmark output.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
}

func openTessera(ctx context.Context, b *testing.B, dir string, signer note.Signer, appenders int) (*logUnderTest, error) {
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return nil, fmt.Errorf("posix.New: %w", err)
	}
	batchSize := *tesseraBatchSize
	if batchSize == 0 {
		batchSize = uint(appenders)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(batchSize, *tesseraBatchAge).
		WithCheckpointInterval(*tesseraCheckpointInterval)

	// The appender's background goroutines live until this context ends;
	// it is cancelled after the shutdown function has run.
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	appender, shutdown, _, err := tessera.NewAppender(actx, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tessera.NewAppender: %w", err)
	}
	return &logUnderTest{
		append: func(ctx context.Context, payload []byte) error {
			// Resolving the future blocks until the POSIX driver has
			// sequenced and integrated the batch holding this entry; the
			// index is durably assigned once it returns.
			_, err := appender.Add(ctx, tessera.NewEntry(payload))()
			return err
		},
		closeFn: func() error {
			defer cancel()
			// Shutdown waits for a checkpoint committing to every resolved
			// entry; this is outside the timed region.
			return shutdown(ctx)
		},
	}, nil
}
