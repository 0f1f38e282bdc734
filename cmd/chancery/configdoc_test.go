package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/site"
)

// TestOperationsConfigReferenceComplete: every field of the site
// configuration file (site.Config, by its YAML name) is in the
// configuration reference of docs/operations.md, so that a field added to
// the code (standby, guests[].custody, peers were once missing) cannot be
// left out of the page operators configure from. A field documented as a
// whole (`guests[].blobs`: "same fields as blobs") covers its sub-fields.
func TestOperationsConfigReferenceComplete(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "| field | where | default | meaning |")
	if i < 0 {
		t.Fatal("docs/operations.md has no configuration reference table")
	}
	ref := doc[i:]
	if j := strings.Index(ref, "\n\n"); j > 0 {
		ref = ref[:j]
	}
	// The first cell of each row: the fields that row documents.
	var fields strings.Builder
	for _, line := range strings.Split(ref, "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 {
			fields.WriteString(cells[1])
		}
	}
	documented := fields.String()
	var missing []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			path := prefix + name
			if strings.Contains(documented, "`"+path+"`") || strings.Contains(documented, "`"+path+".<") {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct && ft.NumField() > 0 && ft.Field(0).Tag.Get("yaml") != "":
				walk(path+".", ft)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(path+"[].", ft.Elem())
			default:
				missing = append(missing, path)
			}
		}
	}
	walk("", reflect.TypeFor[site.Config]())
	for _, m := range missing {
		t.Errorf("docs/operations.md's configuration reference lacks `%s`", m)
	}
}
