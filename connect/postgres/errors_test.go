package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/pgtest"
	"github.com/chancery-gov/chancery/registry"
)

// following starts a cluster with the test schema, a site and a
// connector that has applied one parcel.
func following(t *testing.T) (*pgtest.Cluster, string, *site, Config, *Connector) {
	t.Helper()
	pg, cs := startPG(t)
	s := newSite(t)
	cfg := testConfig()
	c := s.connector(t, cs, cfg)
	c.Start(context.Background())
	t.Cleanup(func() { c.Close() })
	pg.Psql("src", `INSERT INTO parcels VALUES ('a', 1, 1)`)
	waitSame(t, s, cs, cfg, c)
	return pg, cs, s, cfg, c
}

// waitStop waits for a running connector to stop by itself.
func waitStop(t *testing.T, c *Connector, why string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("connector did not stop %s", why)
	}
}

// stopsWith starts a connector and waits for it to stop with want.
func stopsWith(t *testing.T, c *Connector, want error) error {
	t.Helper()
	c.Start(context.Background())
	t.Cleanup(func() { c.Close() })
	select {
	case <-c.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("connector did not stop (want %v); status %+v", want, c.Status())
	}
	err := c.Err()
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("stopped with %v, want %v", err, want)
	}
	t.Logf("stopped with: %v", err)
	return err
}

func TestRefusesTableWithoutPrimaryKey(t *testing.T) {
	pg, cs := startPG(t)
	pg.Psql("src", `CREATE TABLE loose (a int, b text); ALTER PUBLICATION chancery_pub ADD TABLE loose; INSERT INTO loose VALUES (1, 'x');`)
	s := newSite(t)
	cfg := testConfig()
	cfg.Tables = append(cfg.Tables, Table{Table: "loose", Registry: "parcels"})
	cfg.Tables[1].Registry = "people"
	cfg.Tables = cfg.Tables[1:]
	stopsWith(t, s.connector(t, cs, cfg), ErrNoPrimaryKey)
	if n := s.log.Size(); n != 0 {
		t.Fatalf("%d ledger entries written for a refused table", n)
	}
}

func TestRefusesUnknownType(t *testing.T) {
	pg, cs, s, cfg, c := following(t)
	size := s.log.Size()
	// A column of a type the mapping does not know, added while streaming.
	pg.Psql("src", `ALTER TABLE parcels ADD COLUMN spot point; INSERT INTO parcels VALUES ('b', 2, 2, '(1,2)')`)
	waitStop(t, c, "on an unknown type")
	if !errors.Is(c.Err(), ErrUnknownType) || !strings.Contains(c.Err().Error(), "spot") {
		t.Fatalf("err = %v, want ErrUnknownType naming the column", c.Err())
	}
	if s.log.Size() != size {
		t.Fatalf("ledger grew from %d to %d after the refused change", size, s.log.Size())
	}
	// A fresh start refuses it too, at the catalog.
	stopsWith(t, s.connector(t, cs, cfg), ErrUnknownType)
}

func TestRefusesRowBreakingRegistryRules(t *testing.T) {
	pg, _, s, _, c := following(t)
	size := s.log.Size()
	pg.Psql("src", `BEGIN; INSERT INTO parcels VALUES ('b', 1, 1); INSERT INTO parcels VALUES (repeat('x', 300), 1, 1); COMMIT;`)
	waitStop(t, c, "on an id too long")
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "256") || !strings.Contains(err.Error(), "parcels") {
		t.Fatalf("err = %v, want the id limit and the table named", err)
	}
	if s.log.Size() != size {
		t.Fatalf("part of the refused transaction was recorded: ledger %d → %d", size, s.log.Size())
	}
	if _, err := s.reg.Get(context.Background(), "parcels", "b,1", registry.AsOf{}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("the transaction's first row was recorded: %v", err)
	}
}

func TestRefusesInvalidUTF8(t *testing.T) {
	pg := startPGWith(t, "SELECT 1")
	out, err := pg.Command("createdb", "-E", "SQL_ASCII", "-T", "template0", "--locale=C", "ascii").CombinedOutput()
	if err != nil {
		t.Fatalf("createdb: %v %s", err, out)
	}
	pg.Psql("ascii", testSchema+`INSERT INTO parcels VALUES (E'caf\xe9', 1, 1);`)
	s := newSite(t)
	c := s.connector(t, pg.ConnString("ascii"), testConfig())
	err = stopsWith(t, c, nil)
	if err == nil || !strings.Contains(err.Error(), "UTF8") || !strings.Contains(err.Error(), "parcels") {
		t.Fatalf("err = %v, want invalid UTF-8 named", err)
	}
	if n, _ := s.reg.Count("parcels"); n != 0 {
		t.Fatalf("%d records written", n)
	}
}

func TestSlotDroppedThenResnapshot(t *testing.T) {
	pg, cs := startPG(t)
	s := newSite(t)
	cfg := testConfig()
	pg.Psql("src", `INSERT INTO parcels VALUES ('a', 1, 1), ('b', 2, 2), ('c', 3, 3)`)
	c := s.connector(t, cs, cfg)
	c.Start(context.Background())
	waitSame(t, s, cs, cfg, c)
	c.Close()
	// The slot goes; changes meanwhile are not in any stream.
	pg.Psql("src", `SELECT pg_drop_replication_slot('chancery_test'); DELETE FROM parcels WHERE no = 1; UPDATE parcels SET area = 9 WHERE no = 2; INSERT INTO parcels VALUES ('d', 4, 4);`)
	err := stopsWith(t, s.connector(t, cs, cfg), ErrSlotLost)
	if !strings.Contains(err.Error(), "resnapshot") {
		t.Fatalf("the error does not say how to recover: %v", err)
	}
	versions := func() int {
		h, err := s.reg.History(context.Background(), "parcels", "c,3")
		if err != nil {
			t.Fatal(err)
		}
		return len(h)
	}
	before := versions()
	// Resnapshot: the registry follows the table again; an unchanged row
	// gets no new version.
	c2, err := New(Options{Config: cfg, ConnString: cs, Registries: s.reg, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID, Resnapshot: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	c2.Start(context.Background())
	defer c2.Close()
	waitSame(t, s, cs, cfg, c2)
	pg.Psql("src", `INSERT INTO parcels VALUES ('e', 5, 5)`)
	waitSame(t, s, cs, cfg, c2)
	if after := versions(); after != before {
		t.Fatalf("unchanged row got %d new versions", after-before)
	}
}

func TestPostgresKilledAndRestarted(t *testing.T) {
	pg, cs := startPG(t)
	s := newSite(t)
	cfg := testConfig()
	c := s.connector(t, cs, cfg)
	c.Start(context.Background())
	defer c.Close()
	pg.Psql("src", `INSERT INTO parcels SELECT 'r', g, g FROM generate_series(1, 100) g`)
	waitSame(t, s, cs, cfg, c)
	pg.Kill()
	time.Sleep(300 * time.Millisecond)
	pg.Restart()
	pg.Psql("src", `INSERT INTO parcels SELECT 's', g, g FROM generate_series(1, 100) g; DELETE FROM parcels WHERE region = 'r' AND no < 50;`)
	waitSame(t, s, cs, cfg, c)
	if st := c.Status(); st.Retries == 0 {
		t.Fatalf("no reconnect counted: %+v", st)
	}
}

// cutProxy forwards TCP to PostgreSQL; cut drops every connection, as a
// network cut would, and refuses new ones until heal.
type cutProxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns []net.Conn
	down  bool
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); p.cut(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", to)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			wg.Go(func() { io.Copy(u, c); u.Close() })
			wg.Go(func() { io.Copy(c, u); c.Close() })
		}
	})
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func TestNetworkCut(t *testing.T) {
	pg, cs := startPG(t)
	proxy := newCutProxy(t, strings.TrimPrefix(strings.Split(strings.Split(cs, "@")[1], "/")[0], ""))
	viaProxy := strings.Replace(cs, strings.Split(strings.Split(cs, "@")[1], "/")[0], proxy.ln.Addr().String(), 1)
	s := newSite(t)
	cfg := testConfig()
	c := s.connector(t, viaProxy, cfg)
	c.Start(context.Background())
	defer c.Close()
	pg.Psql("src", `INSERT INTO parcels SELECT 'r', g, g FROM generate_series(1, 100) g`)
	waitSame(t, s, cs, cfg, c)
	proxy.cut()
	pg.Psql("src", `UPDATE parcels SET area = area + 1 WHERE no < 30; DELETE FROM parcels WHERE no > 90;`)
	time.Sleep(time.Second)
	proxy.heal()
	waitSame(t, s, cs, cfg, c)
}
