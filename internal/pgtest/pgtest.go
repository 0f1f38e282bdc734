// Package pgtest starts a real, throwaway PostgreSQL cluster for tests and
// benchmarks (package pgcluster), stopped and removed when the test ends.
// Nothing of the replication protocol is mocked; the tests talk to the
// server Debian ships (/usr/lib/postgresql/*/bin).
package pgtest

import (
	"os"
	"testing"

	"github.com/chancery-gov/chancery/internal/pgcluster"
)

// Cluster is a running throwaway PostgreSQL server whose methods fail the
// test on error.
type Cluster struct {
	*pgcluster.Cluster
	t testing.TB
}

// FindBin returns the directory of PostgreSQL's server programs.
func FindBin() (string, error) { return pgcluster.FindBin() }

// Start initialises and starts a cluster that is stopped when the test
// ends. Without PostgreSQL the test is skipped, except when the
// environment variable CI is set: there it fails, so CI cannot pass while
// silently skipping the PostgreSQL tests.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin, err := pgcluster.FindBin()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI is set, so the PostgreSQL tests may not be skipped", err)
		}
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pc, err := pgcluster.Start(bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Stop)
	return &Cluster{Cluster: pc, t: t}
}

// CreateDB creates a database and returns its connection string.
func (c *Cluster) CreateDB(name string) string {
	c.t.Helper()
	cs, err := c.Cluster.CreateDB(name)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

// Psql runs SQL in a database and returns its unaligned output.
func (c *Cluster) Psql(db, sql string) string {
	c.t.Helper()
	out, err := c.Cluster.Psql(db, sql)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// Restart starts the server again after Kill or Stop, on the same port.
func (c *Cluster) Restart() {
	c.t.Helper()
	if err := c.Cluster.Restart(); err != nil {
		c.t.Fatal(err)
	}
}
