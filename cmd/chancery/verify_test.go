package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

// demoState founds a Demo Republic with a ledger of a few hundred entries.
func demoState(t *testing.T, entries int) (dir string, pass []byte) {
	t.Helper()
	dir = t.TempDir()
	pass = []byte("test passphrase")
	if _, err := found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Run(context.Background(), demo.Options{Dir: dir, Passphrase: pass, Persons: entries, DeedPersons: 1, Updates: 10, Appenders: 4}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return dir, pass
}

func verifyOut(t *testing.T, o verifyOptions) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runVerify(context.Background(), o, &out, &errOut)
	return out.String(), err
}

func TestVerifyFindsCharterBesideLedger(t *testing.T) {
	dir, _ := demoState(t, 700)
	ledgerDir := state.Layout{Dir: dir}.Ledger("home")
	out, err := verifyOut(t, verifyOptions{target: ledgerDir, stateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	size := ledgerSize(t, ledgerDir)
	for _, want := range []string{fmt.Sprintf("OK — %d entries", size), "signature: verified with the site keys of charter demo-republic v1", "signed by site home", "first verification"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestVerifyWithoutCharterSaysSo(t *testing.T) {
	dir, _ := demoState(t, 300)
	// The ledger alone, away from its state directory.
	bare := t.TempDir()
	if err := os.CopyFS(bare, os.DirFS(state.Layout{Dir: dir}.Ledger("home"))); err != nil {
		t.Fatal(err)
	}
	out, err := verifyOut(t, verifyOptions{target: bare, noState: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "signature: NOT CHECKED") {
		t.Fatalf("output does not say the signature went unchecked:\n%s", out)
	}
}

func TestVerifyNamesTamperedTile(t *testing.T) {
	dir, _ := demoState(t, 700)
	ledgerDir := state.Layout{Dir: dir}.Ledger("home")
	// Flip a byte of the second full level-0 tile.
	p := filepath.Join(ledgerDir, "tile", "0", "001")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = verifyOut(t, verifyOptions{target: ledgerDir, noState: true})
	if err == nil || !strings.Contains(err.Error(), "tile/0/001") {
		t.Fatalf("verify of a tampered tile: %v, want an error naming tile/0/001", err)
	}
}

func TestVerifyNamesTamperedEntry(t *testing.T) {
	dir, _ := demoState(t, 700)
	ledgerDir := state.Layout{Dir: dir}.Ledger("home")
	size := ledgerSize(t, ledgerDir)
	if size%256 == 0 {
		t.Skip("the ledger ends on a tile boundary")
	}
	bundle := ledger.EntriesPath(size/256, int(size%256))
	p := filepath.Join(ledgerDir, filepath.FromSlash(bundle))
	wantEntry := fmt.Sprintf("entry %d", size-1)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 1 // inside the last entry's payload
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = verifyOut(t, verifyOptions{target: ledgerDir, noState: true})
	// The tiles agree with the signed root: the bundle is what is
	// damaged, and the error names it and the entry, not the tile.
	if err == nil || !strings.Contains(err.Error(), bundle) || !strings.Contains(err.Error(), wantEntry) {
		t.Fatalf("verify of a tampered entry: %v, want an error naming %s and %s", err, bundle, wantEntry)
	}
}

func TestVerifyDetectsForkAcrossRuns(t *testing.T) {
	// Two ledgers of the same origin and charter keys that diverge: an
	// auditor who verified one must reject the other.
	dir, pass := demoState(t, 300)
	home := state.Layout{Dir: dir}.Ledger("home")
	fork := filepath.Join(t.TempDir(), "fork")
	if err := os.CopyFS(fork, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	fixModes(t, fork)
	if _, err := demo.Run(context.Background(), demo.Options{Dir: dir, Passphrase: pass, Persons: 50, DeedPersons: 1, Updates: 5, Appenders: 2, Force: true}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Run(context.Background(), demo.Options{Dir: fork, Passphrase: pass, Persons: 80, DeedPersons: 1, Updates: 7, Appenders: 2, Force: true}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	sd := t.TempDir()
	if _, err := verifyOut(t, verifyOptions{target: home, stateDir: sd}); err != nil {
		t.Fatal(err)
	}
	_, err := verifyOut(t, verifyOptions{target: state.Layout{Dir: fork}.Ledger("home"), stateDir: sd})
	if err == nil || !strings.Contains(err.Error(), "inconsistent with the earlier checkpoint") || !strings.Contains(err.Error(), "FORK") {
		t.Fatalf("verify of a forked ledger after the original: %v", err)
	}
}

// TestVerifyTwoFoundings: two Demo Republics founded apart are two logs,
// each with its own origin, so one auditor's state directory holds both
// and neither is taken for a fork of the other (they all once shared
// ledger.demo-republic.example and the second failed as a fork).
func TestVerifyTwoFoundings(t *testing.T) {
	sd := t.TempDir()
	var origins []string
	for range 2 {
		dir, _ := demoState(t, 20)
		out, err := verifyOut(t, verifyOptions{target: state.Layout{Dir: dir}.Ledger("home"), stateDir: sd})
		if err != nil {
			t.Fatalf("verify of a second founding with the same state directory: %v", err)
		}
		if !strings.Contains(out, "first verification") {
			t.Errorf("output:\n%s", out)
		}
		c, err := charter.ReadFile(state.Layout{Dir: dir}.Charter())
		if err != nil {
			t.Fatal(err)
		}
		origins = append(origins, c.Guest.Origin)
	}
	if origins[0] == origins[1] || !strings.HasPrefix(origins[0], state.DemoOrigin+"/") {
		t.Fatalf("origins %q", origins)
	}
}

func TestVerifyRefusesBareAmendment(t *testing.T) {
	dir, _ := demoState(t, 10)
	c := filepath.Join(dir, "charter.yaml")
	b, _ := os.ReadFile(c)
	v2 := filepath.Join(t.TempDir(), "v2.yaml")
	os.WriteFile(v2, bytes.Replace(b, []byte("version: 1"), []byte("version: 2"), 1), 0o644)
	_, err := verifyOut(t, verifyOptions{target: state.Layout{Dir: dir}.Ledger("home"), charters: []string{v2}, noState: true})
	if err == nil {
		t.Fatal("a lone version-2 charter was accepted without its chain")
	}
}

func ledgerSize(t *testing.T, dir string) uint64 {
	t.Helper()
	signed, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := ledger.SplitNote(signed)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.ParseCheckpoint(text)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// fixModes restores 0600 on key files after os.CopyFS, which copies with
// the process umask.
func fixModes(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".key") {
			os.Chmod(p, 0o600)
		}
		return nil
	})
}

// TestVerifyBlobs: --blobs reads every object of a site's blob directory
// and names one that does not hash to its name.
func TestVerifyBlobs(t *testing.T) {
	dir, _ := demoState(t, 50)
	l := state.Layout{Dir: dir}
	out, err := verifyOut(t, verifyOptions{target: l.Ledger("home"), noState: true, blobs: l.Blobs("home")})
	if err != nil || !strings.Contains(out, "blobs: OK") || strings.Contains(out, "— 0 objects") {
		t.Fatalf("verify --blobs: %v\n%s", err, out)
	}
	var victim string
	filepath.WalkDir(l.Blobs("home"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, string(filepath.Separator)+"data"+string(filepath.Separator)) && victim == "" {
			victim = p
		}
		return nil
	})
	if victim == "" {
		t.Fatal("the demo wrote no pack")
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = verifyOut(t, verifyOptions{target: l.Ledger("home"), noState: true, blobs: l.Blobs("home")})
	if err == nil || !strings.Contains(err.Error(), "1 of") || !strings.Contains(err.Error(), filepath.Base(victim)) {
		t.Fatalf("verify --blobs of a damaged pack: %v", err)
	}
	if _, err := verifyOut(t, verifyOptions{target: l.Ledger("home"), noState: true, blobs: filepath.Join(dir, "none")}); err == nil {
		t.Fatal("verify --blobs of a missing directory succeeded")
	}
}

// TestVerifySiteFlag: verify, repair and drill report name the site whose
// pinned key to trust with --site, like every other command; --pin-site
// still works for one release, with a warning.
func TestVerifySiteFlag(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir, url := startHome(t)
	l := state.Layout{Dir: dir}
	ledgerURL := url + "/ledger"
	out, stderr, err := chanceryErr(t, "verify", "--no-state", "--charter", l.Charter(), "--site", "home", ledgerURL)
	if err != nil || stderr != "" {
		t.Fatalf("verify --site home: %v\n%s%s", err, out, stderr)
	}
	if _, stderr, err = chanceryErr(t, "verify", "--no-state", "--charter", l.Charter(), "--pin-site", "home", ledgerURL); err != nil || !strings.Contains(stderr, "--pin-site is deprecated") {
		t.Fatalf("verify --pin-site: %v\n%s", err, stderr)
	}
	// The key pinned is the named site's: another site's key is refused.
	if _, _, err = chanceryErr(t, "verify", "--no-state", "--charter", l.Charter(), "--site", "embassy-north", ledgerURL); err == nil {
		t.Fatal("verify pinned to embassy-north's key reached the home")
	}
	if out, _, err = chanceryErr(t, "drill", "report", "--charter", l.Charter(), "--site", "home", "--ledger", ledgerURL); err != nil {
		t.Fatalf("drill report --site home: %v\n%s", err, out)
	}
}
