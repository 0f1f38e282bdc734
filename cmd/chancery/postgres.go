package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/chancery-gov/chancery/charter"
	pgconnect "github.com/chancery-gov/chancery/connect/postgres"
	"github.com/chancery-gov/chancery/guest"
)

// envPostgres holds the source or target database's connection string, so
// that a password need not appear in a process listing.
const envPostgres = "CHANCERY_POSTGRES"

// pgFlags are the flags the postgres commands share.
type pgFlags struct {
	stateDir, site, passFile, conn, config string
}

func (f *pgFlags) register(cmd *cobra.Command, connHelp string) {
	fl := cmd.Flags()
	fl.StringVar(&f.stateDir, "state", ".", "state directory")
	fl.StringVar(&f.site, "site", "home", "site whose ledger the connector writes or the restore reads")
	fl.StringVar(&f.passFile, "passphrase-file", "", "file holding the passphrase of the site's keys (default: $CHANCERY_PASSPHRASE, or asked on a terminal)")
	fl.StringVar(&f.conn, "conn", "", connHelp+" (default: $"+envPostgres+")")
	fl.StringVar(&f.config, "config", "", "connector configuration YAML file, instead of the charter's services.postgres section")
}

// open opens the site's state in this process and reads the connector's
// configuration.
func (f *pgFlags) open(ctx context.Context, cmd *cobra.Command) (*guest.Local, pgconnect.Config, string, error) {
	var cfg pgconnect.Config
	conn := cmp.Or(f.conn, os.Getenv(envPostgres))
	if conn == "" {
		return nil, cfg, "", fmt.Errorf("--conn or $%s: the database's connection string is required", envPostgres)
	}
	pass, err := readPassphrase(f.passFile, cmd.InOrStdin(), cmd.ErrOrStderr())
	if err != nil {
		return nil, cfg, "", err
	}
	defer clear(pass)
	l, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: f.stateDir, Site: f.site, Passphrase: pass})
	if err != nil {
		return nil, cfg, "", err
	}
	if cfg, err = pgConfig(l.Charter, f.config); err != nil {
		l.Close()
		return nil, cfg, "", err
	}
	return l, cfg, conn, nil
}

// pgConfig reads the connector's configuration from a file, or else from
// the charter's signed services.postgres section.
func pgConfig(c *charter.Charter, file string) (pgconnect.Config, error) {
	var cfg pgconnect.Config
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("--config: %w", err)
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return cfg, fmt.Errorf("--config %s: %w", file, err)
		}
	} else {
		ok, err := c.Service("postgres", &cfg)
		if err != nil {
			return cfg, err
		}
		if !ok {
			return cfg, fmt.Errorf("the charter of %s has no services.postgres section (or pass --config)", c.Guest.ID)
		}
	}
	return cfg, cfg.Validate()
}

func newPostgresCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "postgres",
		Short: "Follow a PostgreSQL database into registries (logical replication)",
		Long: `The PostgreSQL connector reads chosen tables into registries: a snapshot
at a new replication slot's exported snapshot, then the slot's changes
(pgoutput), each source transaction one ledger batch together with the
connector's position. docs/postgres.md is the guide.`,
	}
	cmd.AddCommand(newPostgresFollowCmd())
	return cmd
}

func newPostgresFollowCmd() *cobra.Command {
	var f pgFlags
	var resnapshot bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "follow --conn URL [--state D] [--site home] [--resnapshot]",
		Short: "Run the connector in this process until interrupted",
		Long: `Follow runs the PostgreSQL connector against the site's state directly
(stop the site first: it holds the ledger), printing its progress, until
interrupted. A restart resumes from the position in the ledger, with no gap
and no duplicate.

The tables, registries, slot and publication come from the charter's
services.postgres section (or --config). If the slot was dropped or
invalidated, follow stops with an error saying so: --resnapshot then drops
the slot, takes a new snapshot and brings the registries back to the
tables (unchanged rows get no new version, rows gone get tombstones).`,
		Example: `  CHANCERY_POSTGRES=postgres://chancery@db.internal/registers chancery postgres follow --state ./demo-state
  chancery postgres follow --conn postgres://chancery@db.internal/registers --resnapshot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stopSignals := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stopSignals()
			l, cfg, conn, err := f.open(ctx, cmd)
			if err != nil {
				return fmt.Errorf("postgres follow: %w", err)
			}
			defer l.Close()
			out := cmd.OutOrStdout()
			c, err := pgconnect.New(pgconnect.Options{Config: cfg, ConnString: conn, Registries: l.Registries, Log: l.Log, Keys: l.Keys,
				Guest: l.Charter.Guest.ID, Resnapshot: resnapshot, Logf: func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }})
			if err != nil {
				return fmt.Errorf("postgres follow: %w", err)
			}
			c.Start(ctx)
			return followProgress(ctx, c, out, every)
		},
	}
	f.register(cmd, "the source database's connection string, as a user with REPLICATION")
	cmd.Flags().BoolVar(&resnapshot, "resnapshot", false, "drop the slot and snapshot again (after a slot was lost)")
	cmd.Flags().DurationVar(&every, "progress", 5*time.Second, "how often to print progress")
	return cmd
}

// followProgress prints the connector's status until it stops.
func followProgress(ctx context.Context, c *pgconnect.Connector, out io.Writer, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.Done():
			printPGStatus(out, c.Status())
			return c.Err()
		case <-ctx.Done():
			err := c.Close()
			printPGStatus(out, c.Status())
			return err
		case <-t.C:
			printPGStatus(out, c.Status())
		}
	}
}

func printPGStatus(out io.Writer, s pgconnect.Status) {
	fmt.Fprintf(out, "%s: %s, position %s (confirmed %s, server %s, %d bytes behind, %d ms), snapshot %d rows, %d changes in %d transactions, %d reconnects",
		s.Slot, s.Phase, s.LSN, s.Confirmed, s.ServerLSN, s.LagBytes, s.LagMillis, s.Snapshot, s.Streamed, s.Txns, s.Retries)
	if s.LastError != "" {
		fmt.Fprintf(out, "; last error: %s", s.LastError)
	}
	fmt.Fprintln(out)
}

func newRestoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Write registries back into a working database",
	}
	cmd.AddCommand(newRestorePostgresCmd())
	return cmd
}

func newRestorePostgresCmd() *cobra.Command {
	var f pgFlags
	var regs []string
	var index int64
	var at string
	var verify, textCopy bool
	cmd := &cobra.Command{
		Use:   "postgres --conn URL [--registry R]... [--index N | --time T] [--verify] [--text-copy]",
		Short: "Write registries, as of a ledger index or time, into a fresh PostgreSQL database with COPY",
		Long: `Restore writes the registries a PostgreSQL connector follows back into
tables of a database, with COPY, as the ledger held them at an index or a
time (default: the latest). Each table is created from the columns and
primary key the connector recorded in the ledger as of the same point; the
tables must not exist yet. --verify then reads every table back and
compares it with the ledger row by row.

Tables whose columns all have a binary form here (integers, floats,
numeric, boolean, text, bytea, json, uuid, date, timestamps) are copied in
COPY's binary format, which PostgreSQL loads without parsing each value;
a value with no exact binary form sends that table again as text.
--text-copy copies every table as text.

It reads the site's state directly: stop the site first.`,
		Example: `  chancery restore postgres --state ./demo-state --conn postgres://app@db.rebuilt/registers --verify
  chancery restore postgres --conn postgres://app@db/registers --registry people --time 2026-03-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, cfg, conn, err := f.open(ctx, cmd)
			if err != nil {
				return fmt.Errorf("restore postgres: %w", err)
			}
			defer l.Close()
			o := pgconnect.RestoreOptions{ConnString: conn, Log: l.Log, Keys: l.Keys, Guest: l.Charter.Guest.ID, Config: cfg, Registries: regs, Verify: verify, Live: l.Registries, TextCOPY: textCopy}
			if cmd.Flags().Changed("index") {
				if index < 0 {
					return errors.New("restore postgres: --index must not be negative")
				}
				i := uint64(index)
				o.Index = &i
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("restore postgres: --time: %w", err)
				}
				o.Time = &t
			}
			out := cmd.OutOrStdout()
			last := time.Now()
			o.Progress = func(table string, rows int64) {
				if time.Since(last) > time.Second {
					fmt.Fprintf(out, "%s: %d rows\n", table, rows)
					last = time.Now()
				}
			}
			start := time.Now()
			res, err := pgconnect.Restore(ctx, o)
			if res != nil {
				var parts []string
				total := int64(0)
				for t, n := range res.Tables {
					parts = append(parts, fmt.Sprintf("%s %d rows", t, n))
					total += n
				}
				el := time.Since(start)
				fmt.Fprintf(out, "restored %s as of ledger entries [0, %d) in %s (%.0f rows/s)\n", strings.Join(parts, ", "), res.AsOf, el.Round(time.Millisecond), float64(total)/max(el.Seconds(), 1e-9))
				if res.Verified {
					fmt.Fprintln(out, "verified: every table equals the ledger, row by row")
				}
			}
			return err
		},
	}
	f.register(cmd, "the target database's connection string")
	cmd.Flags().StringSliceVar(&regs, "registry", nil, "registry to restore (repeatable; default: every one the connector maps)")
	cmd.Flags().Int64Var(&index, "index", 0, "restore as of this ledger index (entries 0 to N)")
	cmd.Flags().StringVar(&at, "time", "", "restore as of this time (RFC 3339)")
	cmd.Flags().BoolVar(&verify, "verify", false, "read the tables back and compare them with the ledger, row by row")
	cmd.Flags().BoolVar(&textCopy, "text-copy", false, "copy every table in COPY's text format, even where the binary format would do")
	cmd.MarkFlagsMutuallyExclusive("index", "time")
	return cmd
}
