package audit

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/chancery-gov/chancery/store"
)

// maxBlobProblems caps the problems Blobs lists, so that a store damaged
// wholesale does not produce a million-line report.
const maxBlobProblems = 100

// BlobReport is what Blobs found in a store.
type BlobReport struct {
	Objects  int     // pack and index objects read
	Bytes    int64   // their total size
	Problems []error // at most maxBlobProblems; Bad counts them all
	Bad      int
}

// Blobs checks, without any key, every object of an attachment store's
// backend: each pack ("…/data/<hex>") and index object ("…/index/<hex>")
// must hash to the name it is stored under (store.CheckObject), the check
// a replica makes on arrival. The part before "data/" or "index/" is the
// registry's prefix (registry.BlobPrefix), so a site's whole blob store is
// checked at once. It proves the store holds what was written, not that
// the sealed chunks open: that needs the registry keys (store.Store.Check).
func Blobs(ctx context.Context, be store.Backend) (*BlobReport, error) {
	rep := &BlobReport{}
	var names []string
	if err := be.List(ctx, "", func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list the store: %w", err)
	}
	for _, name := range names {
		data, err := readObject(ctx, be, name)
		if err == nil {
			err = checkObject(name, data)
		}
		rep.Objects++
		rep.Bytes += int64(len(data))
		if err != nil {
			rep.Bad++
			if len(rep.Problems) < maxBlobProblems {
				rep.Problems = append(rep.Problems, err)
			}
		}
	}
	return rep, nil
}

// checkObject checks an object stored under a registry's prefix: its last
// two components are the name store.CheckObject knows.
func checkObject(name string, data []byte) error {
	own := name
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		if j := strings.LastIndexByte(name[:i], '/'); j >= 0 {
			own = name[j+1:]
		}
	}
	if err := store.CheckObject(own, data); err != nil {
		return fmt.Errorf("object %s: %w", name, err)
	}
	return nil
}

func readObject(ctx context.Context, be store.Backend, name string) ([]byte, error) {
	rc, err := be.Load(ctx, name, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", name, err)
	}
	return data, nil
}
