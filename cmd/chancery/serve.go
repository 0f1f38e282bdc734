package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/site"
)

type serveOptions struct {
	config    string
	logLevel  string
	logFormat string
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run a site: the officials' API, the public ledger and a health check",
		Long: `Serve runs a Chancery site as its configuration file describes
(docs/operations.md). At start it verifies the charter's signatures, opens
the site's ledger with its checkpoint key, unseals the root key, opens the
blob store and rebuilds the registries' index from the ledger.

It serves:
  /v1/...                 the API; every request signed by an official (docs/api.md)
  /ledger/checkpoint      the signed checkpoint, public
  /ledger/tile/...        C2SP tiles and entry bundles, public
  /healthz                health, public

On SIGTERM or SIGINT it stops accepting connections, lets requests in
flight finish, and closes the blob store and the ledger durably.
Logs go to stderr, one JSON object per line.`,
		Example: `  CHANCERY_PASSPHRASE=... chancery serve --config /etc/chancery/home.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.config, "config", "", "site configuration file (required)")
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
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch o.logFormat {
	case "json":
		h = slog.NewJSONHandler(logOut, hopts)
	case "text":
		h = slog.NewTextHandler(logOut, hopts)
	default:
		return fmt.Errorf("serve: --log-format %q: want json or text", o.logFormat)
	}
	cfg, err := site.LoadConfig(o.config)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return site.Run(ctx, cfg, site.Options{Logger: slog.New(h)})
}
