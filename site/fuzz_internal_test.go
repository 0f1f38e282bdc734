package site

import (
	"testing"
)

// FuzzParseConfig: a site config comes from an operator's file; the
// parser never panics on any bytes.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("state_dir: /var/lib/chancery\nsite: home\nlisten: 127.0.0.1:7001\ninsecure_loopback: true\npassphrase_file: pass\n"))
	f.Add([]byte("site: [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseConfig(b)
	})
}
