package site

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/chancery-gov/chancery/ledger"
)

// Cache lifetimes for the public ledger, as C2SP tlog-tiles suggests: a
// tile or entry bundle at a path never changes (a partial one has its
// width in the path), so caches may keep it for ever; the checkpoint
// moves with every commit, so caches may keep it only for seconds.
const (
	tileCacheControl       = "public, max-age=31536000, immutable"
	checkpointCacheControl = "public, max-age=5"
)

// mountLedger serves the guest's ledger read-only and without
// authentication: the checkpoint, and tiles and entry bundles under
// tile/, each path checked by ledger.ParseTilePath. Nothing else of the
// ledger directory is reachable: not wal/, not temporary files, not a
// path with "..", because the only paths opened are rebuilt from a
// successful, canonical parse.
func mountLedgerDir(mux *http.ServeMux, prefix, dir string) {
	mux.HandleFunc("GET "+prefix+"/"+ledger.CheckpointPath, func(w http.ResponseWriter, r *http.Request) {
		serveLedgerFile(w, r, filepath.Join(dir, ledger.CheckpointPath), "text/plain; charset=utf-8", checkpointCacheControl)
	})
	mux.HandleFunc("GET "+prefix+"/tile/{path...}", func(w http.ResponseWriter, r *http.Request) {
		p := "tile/" + r.PathValue("path")
		if _, _, _, err := ledger.ParseTilePath(p); err != nil {
			http.Error(w, "not a tile path", http.StatusNotFound)
			return
		}
		serveLedgerFile(w, r, filepath.Join(dir, filepath.FromSlash(p)), "application/octet-stream", tileCacheControl)
	})
}

func serveLedgerFile(w http.ResponseWriter, r *http.Request, path, ctype, cache string) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		http.Error(w, "cannot read the ledger", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	h.Set("Cache-Control", cache)
	h.Set("X-Content-Type-Options", "nosniff")
	// Anyone may audit the ledger, from a browser too.
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.Copy(w, f)
	}
}
