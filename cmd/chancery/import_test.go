package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/registry"
)

// homeState founds a Demo Republic (with the home's root key), its keys sealed
// under pass, and points $CHANCERY_PASSPHRASE at it for the test.
func homeState(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pass := []byte("import test passphrase")
	if _, err := found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(keyfile.EnvPassphrase, string(pass))
	return dir
}

func importLine(id, last string) string {
	return fmt.Sprintf(`{"registry":"population","id":%q,"record":{"national_id":%q,"last_name":%q}}`, id, id, last)
}

func TestImportStopsAtBadLine(t *testing.T) {
	dir := homeState(t)
	var lines []string
	for i := 1; i <= 5; i++ {
		lines = append(lines, importLine(fmt.Sprintf("DR-%d", i), "Berg"))
	}
	// Line 6 lacks an index field; lines 7 to 9 are good but come after it.
	lines = append(lines, `{"registry":"population","id":"DR-6","record":{"national_id":"DR-6"}}`)
	for i := 7; i <= 9; i++ {
		lines = append(lines, importLine(fmt.Sprintf("DR-%d", i), "Berg"))
	}
	file := filepath.Join(t.TempDir(), "people.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	cmd := newImportCmd()
	cmd.SetArgs([]string{file, "--state", dir, "--site", "home", "--batch", "2"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(context.Background())
	if err == nil {
		t.Fatalf("import of a bad file succeeded:\n%s", out.String())
	}
	var ve *registry.ValidationError
	if !errors.As(err, &ve) || ve.Line != 6 || ve.Field != "last_name" || !strings.Contains(err.Error(), "line 6") {
		t.Fatalf("error %v does not name line 6 and field last_name", err)
	}
	if !strings.Contains(out.String(), "imported 5 records") {
		t.Errorf("output does not report the 5 committed records:\n%s", out.String())
	}

	l, err := guest.OpenLocal(context.Background(), guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(os.Getenv(keyfile.EnvPassphrase))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= 9; i++ {
		id := fmt.Sprintf("DR-%d", i)
		rec, err := l.Registries.Get(context.Background(), "population", id, registry.AsOf{})
		switch {
		case i < 6 && err != nil:
			t.Errorf("%s (before the bad line) not readable: %v", id, err)
		case i < 6 && rec.ID != id:
			t.Errorf("%s read back as %s", id, rec.ID)
		case i >= 6 && !errors.Is(err, registry.ErrNotFound):
			t.Errorf("%s (at or after the bad line): %v, want not found", id, err)
		}
	}
}

func TestImportWithAttachmentsReportsRate(t *testing.T) {
	dir := homeState(t)
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "deed.txt"), []byte("deed of parcel 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintln(&b, importLine(fmt.Sprintf("DR-%d", i), "Horak"))
	}
	fmt.Fprintln(&b, `{"registry":"land","id":"P-1","record":{"parcel_id":"P-1","owner_id":"DR-1"},"attachments":{"deed.txt":"deed.txt"}}`)
	file := filepath.Join(in, "load.jsonl")
	os.WriteFile(file, []byte(b.String()), 0o600)

	var out bytes.Buffer
	if err := runImport(context.Background(), importOptions{file: file, stateDir: dir, site: "home", batch: 8}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"imported 51 records (1 attachments)", "records/s", "100% of the file"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	l, err := guest.OpenLocal(context.Background(), guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(os.Getenv(keyfile.EnvPassphrase))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec, err := l.Registries.Get(context.Background(), "land", "P-1", registry.AsOf{})
	if err != nil || len(rec.Attachments) != 1 {
		t.Fatalf("P-1: %+v, %v", rec, err)
	}
	var deed bytes.Buffer
	if err := l.Registries.GetBlob(context.Background(), "land", rec.Attachments[0].Ref, &deed); err != nil || deed.String() != "deed of parcel 1" {
		t.Fatalf("deed after reopening: %q, %v", deed.String(), err)
	}
}

// TestImportResumesAfterBadLine imports a file with a bad line in the
// middle, fixes the line and runs the import again: the rerun writes only
// the lines from the fixed one on, and no record, with or without an
// attachment, has a second version. A third run writes nothing.
func TestImportResumesAfterBadLine(t *testing.T) {
	dir := homeState(t)
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "deed.txt"), []byte("deed of parcel 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	land := `{"registry":"land","id":"P-1","record":{"parcel_id":"P-1","owner_id":"DR-1"},"attachments":{"deed.txt":"deed.txt"}}`
	lines := []string{land}
	for i := 1; i <= 9; i++ {
		lines = append(lines, importLine(fmt.Sprintf("DR-%d", i), "Berg"))
	}
	bad := `{"registry":"population","id":"DR-10","record":{"national_id":"DR-10"}}`
	lines = append(lines, bad)
	for i := 11; i <= 20; i++ {
		lines = append(lines, importLine(fmt.Sprintf("DR-%d", i), "Berg"))
	}
	file := filepath.Join(in, "people.jsonl")
	write := func() {
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write()
	run := func() (string, error) {
		var out bytes.Buffer
		err := runImport(context.Background(), importOptions{file: file, stateDir: dir, site: "home", batch: 4}, &out)
		return out.String(), err
	}
	if out, err := run(); err == nil || !strings.Contains(out, "imported 10 records") {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	lines[10] = importLine("DR-10", "Berg")
	write()
	out, err := run()
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	if !strings.Contains(out, "skipped 10 lines") || !strings.Contains(out, "imported 11 records") {
		t.Errorf("rerun output:\n%s", out)
	}
	out, err = run()
	if err != nil || !strings.Contains(out, "skipped 21 lines") || strings.Contains(out, "into ledger entries") {
		t.Errorf("third run: %v\n%s", err, out)
	}

	l, err := guest.OpenLocal(context.Background(), guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(os.Getenv(keyfile.EnvPassphrase))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ids := map[string][]string{"land": {"P-1"}}
	for i := 1; i <= 20; i++ {
		ids["population"] = append(ids["population"], fmt.Sprintf("DR-%d", i))
	}
	for reg, list := range ids {
		for _, id := range list {
			vs, err := l.Registries.History(context.Background(), reg, id)
			if err != nil || len(vs) != 1 {
				t.Errorf("%s %s: %d versions, %v; want exactly 1", reg, id, len(vs), err)
			}
		}
	}
}

// TestImportRerunRefusesChangedAttachment: a rerun whose line matches the
// latest version in record and attachment sizes but whose file changed is
// not skipped silently: it stops at that line, naming the attachment.
func TestImportRerunRefusesChangedAttachment(t *testing.T) {
	dir := homeState(t)
	in := t.TempDir()
	deed := filepath.Join(in, "deed.txt")
	os.WriteFile(deed, []byte("deed of parcel 1"), 0o600)
	file := filepath.Join(in, "land.jsonl")
	os.WriteFile(file, []byte(`{"registry":"land","id":"P-1","record":{"parcel_id":"P-1","owner_id":"DR-1"},"attachments":{"deed.txt":"deed.txt"}}`+"\n"), 0o600)
	var out bytes.Buffer
	if err := runImport(context.Background(), importOptions{file: file, stateDir: dir, site: "home"}, &out); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(deed, []byte("deed of parcel 2"), 0o600) // same size
	out.Reset()
	err := runImport(context.Background(), importOptions{file: file, stateDir: dir, site: "home"}, &out)
	var ve *registry.ValidationError
	if !errors.As(err, &ve) || ve.Line != 1 || ve.Field != "attachments.deed.txt" {
		t.Fatalf("rerun with a changed attachment: %v\n%s", err, out.String())
	}
}
