package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chancery-gov/chancery/registry"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// File is the JSONL file: one registry.ImportLine per line;
	// attachment paths are relative to its directory.
	File string
	// Local opens the state; Import closes it.
	Local LocalOptions
	// Batch is how many records share a ledger commit (0: the registry's default).
	Batch int
	// Progress, if set, is told the file's size once (total) and then the
	// records and bytes of the file committed so far, after each batch.
	Progress func(records int, bytes, total int64)
}

// Import loads a JSONL file into a guest's registries in this process,
// not over HTTP: the fast path for a first load or a bulk migration. A bad
// line stops it with an error naming the line; every line before it is
// committed, nothing after. The state must not be open elsewhere (a
// running site holds the ledger).
func Import(ctx context.Context, o ImportOptions) (res registry.ImportResult, err error) {
	f, err := os.Open(o.File)
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("import %s: %w", o.File, err)
	}
	l, err := OpenLocal(ctx, o.Local)
	if err != nil {
		return res, fmt.Errorf("import %s: %w", o.File, err)
	}
	// Close flushes the blob store before the ledger: attachments stored
	// during the import become durable there too.
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("import %s: %w", o.File, cerr))
		}
	}()
	total := fi.Size()
	ro := registry.ImportOptions{Dir: filepath.Dir(o.File), Batch: o.Batch}
	if o.Progress != nil {
		o.Progress(0, 0, total)
		ro.Progress = func(records int, bytes int64) { o.Progress(records, bytes, total) }
	}
	res, err = l.Registries.Import(ctx, f, ro)
	if err != nil {
		return res, fmt.Errorf("import %s: %w", o.File, err)
	}
	return res, nil
}
