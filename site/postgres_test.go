package site_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/pgtest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

// The Demo Republic's charter maps this table (internal/demo/found).
const civilServants = `
CREATE TABLE civil_servants (servant_no text PRIMARY KEY, name text NOT NULL, rev int NOT NULL);
CREATE PUBLICATION chancery_demo FOR TABLE civil_servants;
`

func openHomePG(dir string, logs *syncBuffer, pg *site.PostgresConfig) (*site.Site, error) {
	cfg := &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true},
		Postgres: pg}
	return site.Open(context.Background(), cfg, site.Options{
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Local:  guest.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}},
	})
}

// waitPG polls the site's continuity status until ok holds of its
// connector's.
func waitPG(t *testing.T, url string, what string, ok func(*siteapi.PostgresStatus) bool) *siteapi.PostgresStatus {
	t.Helper()
	cc := &siteapi.ContinuityClient{BaseURL: url, Guest: "demo-republic"}
	var last *siteapi.PostgresStatus
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, err := cc.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if last = st.Postgres; last != nil && ok(last) {
			return last
		}
	}
	t.Fatalf("connector never %s; last status %+v", what, last)
	return nil
}

// checkRegistryEqualsTable compares the civil-service registry with the
// table row by row, and checks each record's version equals its row's
// rev: every insert and update recorded once, none missing.
func checkRegistryEqualsTable(t *testing.T, pg *pgtest.Cluster, regs *registry.Registries) {
	t.Helper()
	rows := map[string]string{}
	for _, line := range strings.Split(pg.Psql("src", "SELECT servant_no, name, rev FROM civil_servants"), "\n") {
		f := strings.Split(line, "|")
		rows[f[0]] = line
	}
	n := 0
	err := regs.ScanAsOf(context.Background(), "civil-service", registry.AsOf{}, func(r *registry.Record) error {
		n++
		var v struct {
			No   string `json:"servant_no"`
			Name string `json:"name"`
			Rev  int    `json:"rev"`
		}
		if err := json.Unmarshal(r.Data, &v); err != nil {
			return err
		}
		if want := rows[r.ID]; want != fmt.Sprintf("%s|%s|%d", v.No, v.Name, v.Rev) {
			return fmt.Errorf("record %s: %s, table row %q", r.ID, r.Data, want)
		}
		if r.Version != uint64(v.Rev) {
			return fmt.Errorf("record %s at version %d carries rev %d: a change recorded twice or missed", r.ID, r.Version, v.Rev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(rows) {
		t.Fatalf("registry holds %d records, table %d rows", n, len(rows))
	}
}

func lsn(t *testing.T, s string) pglogrepl.LSN {
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestServeRunsPostgresConnector: chancery serve's home runs its guest's
// connector from the site config's secret (a file only its user may
// read), shows it in the continuity status, stops it when the site
// closes and resumes from the ledger's position when it opens again,
// with no gap and no duplicate.
func TestServeRunsPostgresConnector(t *testing.T) {
	pg := pgtest.Start(t)
	pg.CreateDB("src")
	pg.Psql("src", civilServants+"INSERT INTO civil_servants SELECT 'CS-'||i, 'Servant '||i, 1 FROM generate_series(1, 50) i;")
	dir := newState(t)
	logs := &syncBuffer{}
	connFile := filepath.Join(t.TempDir(), "postgres.conn")
	secret := pg.ConnString("src") + "&application_name=secret-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(connFile, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pgc := &site.PostgresConfig{ConnFile: connFile}
	if _, err := openHomePG(dir, logs, pgc); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a connection string file readable by others: %v, want a refusal saying chmod 600", err)
	}
	if err := os.Chmod(connFile, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openHomePG(dir, logs, pgc)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	st := waitPG(t, srv.URL, "streamed after its snapshot", func(p *siteapi.PostgresStatus) bool {
		return p.Running && p.Phase == "stream" && p.Snapshot == 50
	})
	pg.Psql("src", `BEGIN; INSERT INTO civil_servants SELECT 'CS-'||i, 'Servant '||i, 1 FROM generate_series(51, 70) i;
		UPDATE civil_servants SET name = name || ' (promoted)', rev = rev + 1 WHERE servant_no IN ('CS-1', 'CS-60'); COMMIT;
		DELETE FROM civil_servants WHERE servant_no = 'CS-2';`)
	st = waitPG(t, srv.URL, "applied two transactions", func(p *siteapi.PostgresStatus) bool { return p.Txns >= 2 && p.LagBytes == 0 })
	checkRegistryEqualsTable(t, pg, s.Local().Registries)
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := `chancery_postgres_rows_total{guest="demo-republic",phase="snapshot",slot="chancery_demo"} 50`; !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if r, err := s.Local().Registries.Get(context.Background(), "civil-service", "CS-2", registry.AsOf{}); err != nil || !r.Deleted {
		t.Errorf("CS-2 was deleted at the source: %+v, %v, want a tombstone", r, err)
	}
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the connector: the slot is free at once.
	if got := pg.Psql("src", "SELECT active FROM pg_replication_slots WHERE slot_name = 'chancery_demo'"); got != "f" {
		t.Errorf("slot active %q right after the site closed: the connector outlived its site", got)
	}
	if strings.Contains(logs.String(), "secret-") {
		t.Error("the site's log holds the connection string")
	}

	// Changes while the site is down are read once it is back.
	pg.Psql("src", `UPDATE civil_servants SET rev = rev + 1, name = 'Renamed' WHERE servant_no LIKE 'CS-1%';
		INSERT INTO civil_servants VALUES ('CS-71', 'Servant 71', 1);`)
	s, err = openHomePG(dir, logs, pgc)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv = httptest.NewServer(s.Handler())
	defer srv.Close()
	waitPG(t, srv.URL, "resumed", func(p *siteapi.PostgresStatus) bool {
		return p.Running && p.Txns >= 2 && p.LagBytes == 0 && lsn(t, p.LSN) > lsn(t, st.LSN)
	})
	checkRegistryEqualsTable(t, pg, s.Local().Registries)
}

// TestPostgresConfigChecked: the connector's database is named once per
// guest, by a file or an environment variable, and a home whose charter
// maps no tables refuses a database in its config rather than ignore it.
func TestPostgresConfigChecked(t *testing.T) {
	base := site.Config{StateDir: "/srv/d", Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true}
	for _, tc := range []struct {
		pg   *site.PostgresConfig
		want string
	}{
		{&site.PostgresConfig{}, "give one of conn_file"},
		{&site.PostgresConfig{ConnFile: "/etc/pg", ConnEnv: "PG"}, "give one of conn_file"},
	} {
		c := base
		c.Postgres = tc.pg
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("postgres %+v: %v, want %q", tc.pg, err, tc.want)
		}
	}
	emb := site.Config{DataDir: "/srv/e", Site: "embassy-north", Listen: "127.0.0.1:0", InsecureLoopback: true,
		Guests: []site.GuestConfig{{Charter: "c.yaml", CheckpointKey: "k"}}, Postgres: &site.PostgresConfig{ConnEnv: "PG"}}
	if err := emb.Validate(); err == nil || !strings.Contains(err.Error(), "guests[i].postgres") {
		t.Errorf("an embassy with a top-level postgres: %v", err)
	}
	t.Setenv("CHANCERY_TEST_PG", "")
	if _, err := openHomePG(newState(t), &syncBuffer{}, &site.PostgresConfig{ConnEnv: "CHANCERY_TEST_PG"}); err == nil || !strings.Contains(err.Error(), "empty or unset") {
		t.Errorf("an empty conn_env: %v", err)
	}
}
