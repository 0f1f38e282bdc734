package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/internal/harden"
	"github.com/chancery-gov/chancery/site"
)

type serveOptions struct {
	config           string
	insecureLoopback bool
	logLevel         string
	logFormat        string
	hardening        *harden.Report // what harden.Process did, set by the command (not by tests)
	check            bool
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run a site — home or embassy — as its configuration says",
		Long: `Serve runs a Chancery site as its configuration file describes
(docs/operations.md). The same binary is a home or an embassy:

A home (state_dir in the config) verifies the charter, opens its ledger with
its checkpoint key, unseals the root key, opens the blob stores, rebuilds the
registries' index, and ships every new entry and attachment to the other
sites of its charter, over mutual TLS pinned to the charter's keys. It serves:
  /v1/...                    the officials' API, every request signed (docs/api.md)
  /ledger/...                the ledger as C2SP tiles, public
  /replica/v1/status         each site's receipt and recovery point (RPO)

An embassy (data_dir and guests in the config) holds several guests, each a
sealed mirror in its own directory or bucket prefix, within the quota its
charter sets. It holds no guest key. Per guest it serves:
  /guests/<guest>/ledger/... the guest's ledger, public, for auditors and sites
  /guests/<guest>/notices    the guest's public notices, even in standby
  /replica/v1/guests/<guest> the replication API, to the guest's sites only
  /operator/v1/guests/<guest>/status|suspend   the host operator's API, signed by the host

Both serve /healthz, /livez (the process is up), /readyz (200 only when
every guest's ledger is healthy and the guest is neither fenced nor
suspended; else 503 with the reasons) and /metrics (Prometheus).

--check validates the configuration and what it names on disk, lists every
problem with the field it is about, and exits (0: none, 1: some): the
charter and the site's place in it, key files readable by their owner only,
the TLS key against the charter's pin (when the passphrase is given by
passphrase_file or $CHANCERY_PASSPHRASE), an embassy's custody packages,
peers that are sites of the charter.

On SIGTERM or SIGINT it stops accepting connections, lets requests in
flight finish, and closes the blob store and the ledger durably.
Logs go to stderr, one JSON object per line.`,
		Example: `  chancery serve --check --config /etc/chancery/embassy-north.yaml
  CHANCERY_PASSPHRASE=... chancery serve --config /etc/chancery/home.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.check {
				return runServeCheck(cmd.OutOrStdout(), o)
			}
			r := harden.Process()
			o.hardening = &r
			return runServe(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.config, "config", "", "site configuration file (required)")
	cmd.Flags().BoolVar(&o.insecureLoopback, "insecure-loopback", false, "serve and replicate over plain HTTP, on a loopback address only (tests, a local TLS proxy)")
	cmd.Flags().BoolVar(&o.check, "check", false, "validate the configuration and what it names on disk, print every problem, and exit")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&o.logFormat, "log-format", "json", "json or text")
	cmd.MarkFlagRequired("config")
	return cmd
}

func runServe(ctx context.Context, o serveOptions, logOut io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("serve: --log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
	var h slog.Handler
	switch o.logFormat {
	case "json":
		h = slog.NewJSONHandler(logOut, hopts)
	case "text":
		h = slog.NewTextHandler(logOut, hopts)
	default:
		return fmt.Errorf("serve: --log-format %q: want json or text", o.logFormat)
	}
	var override func(*site.Config)
	if o.insecureLoopback {
		override = func(c *site.Config) { c.InsecureLoopback, c.TLS, c.TLSKey = true, nil, "" }
	}
	cfg, err := site.LoadConfigWith(o.config, override)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	logger := slog.New(h)
	if o.hardening != nil {
		logger.Info(o.hardening.String(), "not_dumpable", o.hardening.NoDump, "no_core", o.hardening.NoCore)
	}
	// What serve --check finds, serve says at start, so that a site does
	// not start silently without what it needs (an embassy's custody); a
	// TLS key the charter pins for another site is refused outright: no
	// one could reach the site pinned, and it would answer as another.
	k := checkConfig(cfg)
	clear(k.pass)
	if len(k.wrongKey) > 0 {
		return fmt.Errorf("serve %s: %s (chancery serve --check --config %s lists every problem)", o.config, k.wrongKey[0], o.config)
	}
	for _, p := range k.problems {
		logger.Warn("serve: configuration problem (chancery serve --check lists them)", "site", cfg.Site, "problem", p)
	}
	start := time.Now()
	err = site.Run(ctx, cfg, site.Options{Logger: logger})
	if err == nil {
		logger.Info("serve: stopped", "site", cfg.Site, "duration", time.Since(start))
	}
	return err
}

// durationText writes every duration in the logs as a Go duration string
// ("1.503s"), never as raw nanoseconds, which a person reading the logs
// in a crisis would have to count.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
