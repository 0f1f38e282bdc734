package demo

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/pgcluster"
	"github.com/chancery-gov/chancery/internal/testnet"
)

// TestDemoPostgresFailback is the failback test of the PostgreSQL
// connector with real site processes and a real PostgreSQL: the home
// (chancery serve) follows the table; it is killed and its data deleted
// while the table keeps changing; embassy-north is activated and, its
// config naming the database, resumes from the position in the ledger;
// failback to the rebuilt home, which resumes from embassy-north's
// position. Then every row equals its record and every record's version
// equals its row's change count (no gap, no duplicate), and the registry
// restored into a fresh database equals the source.
func TestDemoPostgresFailback(t *testing.T) {
	if _, err := pgcluster.FindBin(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	var out bytes.Buffer
	bin := testnet.BuildChancery(t)
	rep, err := Run(context.Background(), Options{Persons: 60, DeedPersons: 2, Updates: 10, Appenders: 4, WorkFactor: 10, Binary: bin, Postgres: true}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	switch {
	case rep.PGLagMedian <= 0:
		t.Error("no lag measured at home")
	case rep.PGEmbassyChanges < 30:
		t.Errorf("embassy-north streamed %d changes, want the 25 hired while home was lost, their promotions and 5 more", rep.PGEmbassyChanges)
	case rep.PGChecked != 250:
		t.Errorf("%d rows checked after failback, want 250", rep.PGChecked)
	case rep.PGRestored != 250:
		t.Errorf("%d rows restored, want 250", rep.PGRestored)
	}
	for _, step := range []string{"The home follows the database", "embassy-north's config names the database", "follows the database again", "restore postgres"} {
		if !strings.Contains(out.String(), step) {
			t.Errorf("the story lacks %q", step)
		}
	}
}
