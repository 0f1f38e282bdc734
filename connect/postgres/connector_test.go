package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/registry"
)

// waitSame polls until the tables equal the registries, or fails.
func waitSame(t testing.TB, s *site, cs string, cfg Config, c *Connector) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = Compare(context.Background(), cs, s.log, s.keys, s.c.Guest.ID, cfg); err == nil {
			return
		}
		if c != nil && c.Err() != nil {
			t.Fatalf("connector stopped: %v", c.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tables never caught up: %v", err)
}

func TestSnapshotThenStream(t *testing.T) {
	pg, cs := startPG(t)
	pg.Psql("src", `INSERT INTO people VALUES
 (1, 'Ana', '1990-01-02', 12.50, '2024-03-04 05:06:07.123456+02', '\x00ff10', '{a,"b c",NULL}', '{"k":[1,2]}', 1.5, true, 'x'),
 (2, 'Bo', NULL, NULL, NULL, NULL, NULL, NULL, 'NaN', false, NULL);
INSERT INTO parcels VALUES ('North,East', 1, 10.25), ('50%', 2, 3);`)
	s := newSite(t)
	cfg := testConfig()
	cfg.Truncate = TruncateTombstones
	c := s.connector(t, cs, cfg)
	c.Start(context.Background())
	defer c.Close()
	waitSame(t, s, cs, cfg, c)

	ctx := context.Background()
	rec, err := s.reg.Get(ctx, "people", "1", registry.AsOf{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"balance":"12.50"`, `"seen":"2024-03-04T03:06:07.123456Z"`, `"photo":"AP8Q"`, `"tags":["a","b c",null]`, `"extra":{"k": [1, 2]}`, `"born":"1990-01-02"`, `"id":1`} {
		if !strings.Contains(string(rec.Data), want) {
			t.Errorf("record 1 = %s, want %s in it", rec.Data, want)
		}
	}
	if _, err := s.reg.Get(ctx, "parcels", "North%2CEast,1", registry.AsOf{}); err != nil {
		t.Errorf("composite key with the separator in it: %v", err)
	}

	// Streaming: a multi-statement transaction, an update of the key, a
	// delete, a schema change, an unchanged TOAST value.
	pg.Psql("src", `BEGIN; INSERT INTO people (id, name) VALUES (3, 'Cy'); UPDATE people SET name = 'Ana B' WHERE id = 1;
 DELETE FROM people WHERE id = 2; UPDATE parcels SET no = 7 WHERE no = 2; COMMIT;
 UPDATE people SET bio = (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) i) WHERE id = 3;
 ALTER TABLE people ADD COLUMN nick text; UPDATE people SET nick = 'c' WHERE id = 3;
 ALTER TABLE people DROP COLUMN score; UPDATE people SET name = 'Ana C' WHERE id = 1;`)
	waitSame(t, s, cs, cfg, c)
	rec, err = s.reg.Get(ctx, "people", "3", registry.AsOf{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec.Data), "c4ca4238a0b923820dcc509a6f75849b") || !strings.Contains(string(rec.Data), `"nick":"c"`) {
		t.Errorf("record 3 lost its unchanged TOAST value or its new column: %.200s", rec.Data)
	}
	if h, err := s.reg.History(ctx, "people", "2"); err != nil || !h[len(h)-1].Deleted {
		t.Errorf("deleted row: %v %+v", err, h)
	}
	// TRUNCATE with the tombstones policy.
	pg.Psql("src", `TRUNCATE parcels`)
	waitSame(t, s, cs, cfg, c)
	st := c.Status()
	if st.Phase != PhaseStream || st.Txns < 5 || st.Schema < 2 || st.Snapshot != 4 {
		t.Errorf("status %+v", st)
	}
}

func TestTruncateRefused(t *testing.T) {
	pg, _, s, _, c := following(t)
	pg.Psql("src", `TRUNCATE parcels`)
	waitStop(t, c, "on a refused truncate")
	if !errors.Is(c.Err(), ErrTruncateRefused) {
		t.Fatalf("err = %v, want ErrTruncateRefused", c.Err())
	}
	if _, err := s.reg.Get(context.Background(), "parcels", "a,1", registry.AsOf{}); err != nil {
		t.Fatalf("the record must stay: %v", err)
	}
}
