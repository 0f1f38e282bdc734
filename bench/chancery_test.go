package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"golang.org/x/mod/sumdb/note"
)

func init() {
	register(system{name: "chancery", open: openChancery})
}

func openChancery(ctx context.Context, b *testing.B, dir string, signer note.Signer, appenders int) (*logUnderTest, error) {
	l, err := ledger.Open(ctx, dir, ledger.Options{Origin: logOrigin, Signer: signer})
	if err != nil {
		return nil, fmt.Errorf("ledger.Open: %w", err)
	}
	// Every entry carries the same timestamp, taken before the timer starts,
	// so the timed loop does no clock reads beyond the latency measurement.
	stamp := time.Now().Truncate(time.Millisecond)
	return &logUnderTest{
		append: func(ctx context.Context, payload []byte) error {
			// Append returns once the entry is fsynced to the write-ahead log.
			_, err := l.Append(ctx, ledger.Entry{Type: ledger.TypeRecord, Epoch: 1, Time: stamp, Payload: payload})
			return err
		},
		closeFn: l.Close,
	}, nil
}
