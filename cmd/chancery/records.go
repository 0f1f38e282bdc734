package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

func newRecordsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "records",
		Short: "Read and write a guest's records at a site, as an official",
		Long: `The records commands call a site's officials' API (docs/api.md), each
request signed with the official's key, opened from its age-sealed file in
the state directory (STATE/keys/official-ID.key) with the passphrase.

--site names the site by its id in the charter: the command takes the
site's address and pinned TLS key from the charter (--url overrides the
address), and the guest from the charter. At an embassy the guest's API is
served only once an activation order has been accepted and its custodians
have unsealed it; the first read there records the activation's
first_read_at, from which the site's status reports the RTO.

Output is JSON when stdout is not a terminal, and a readable form on one
(--json forces JSON).`,
	}
	cmd.AddCommand(newRecordsGetCmd(), newRecordsPutCmd(), newRecordsDeleteCmd(), newRecordsHistoryCmd(), newRecordsFindCmd())
	return cmd
}

func newRecordsGetCmd() *cobra.Command {
	var (
		f       siteFlags
		atIndex uint64
		atTime  string
	)
	cmd := &cobra.Command{
		Use:   "get REGISTRY ID",
		Short: "Read a record: its latest version, or the one in force at a ledger index or time",
		Example: `  chancery records get population DR-0001 --state ./dr --official registrar
  chancery records get population DR-0001 --site embassy-north --official registrar --at-time 2026-01-01T00:00:00Z`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var at registry.AsOf
			if cmd.Flags().Changed("at-index") {
				at.Index = &atIndex
			}
			if atTime != "" {
				tm, err := time.Parse(time.RFC3339Nano, atTime)
				if err != nil {
					return fmt.Errorf("--at-time: %w", err)
				}
				at.Time = &tm
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				rec, err := t.client().Get(ctx, args[0], args[1], at)
				if err != nil {
					return err
				}
				return f.printRecord(cmd.OutOrStdout(), rec)
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().Uint64Var(&atIndex, "at-index", 0, "read the version in force at this ledger index")
	cmd.Flags().StringVar(&atTime, "at-time", "", "read the version in force at this time (RFC 3339)")
	return cmd
}

func newRecordsPutCmd() *cobra.Command {
	var (
		f      siteFlags
		attach []string
		keep   []string
	)
	cmd := &cobra.Command{
		Use:   "put REGISTRY ID FILE.json|-",
		Short: "Write a new version of a record (its JSON from a file, or - for stdin)",
		Long: `Put writes a new version of a record. The record's JSON comes from FILE, or
from stdin with "-". Attachments are named with --attach NAME=REF, where REF
is what "chancery blobs put" printed, or kept from the latest version with
--keep NAME; a version carries only the attachments named.`,
		Example: `  echo '{"national_id":"DR-0001","last_name":"Berg"}' | chancery records put population DR-0001 - --state ./dr --official registrar
  chancery records put land P-1 parcel.json --official registrar --attach deed.pdf=$(chancery blobs put land deed.pdf --official registrar --json | jq -r .ref)`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []byte
			var err error
			if args[2] == "-" {
				raw, err = io.ReadAll(cmd.InOrStdin())
			} else {
				raw, err = os.ReadFile(args[2])
			}
			if err != nil {
				return fmt.Errorf("records put: read the record: %w", err)
			}
			if !json.Valid(raw) {
				return fmt.Errorf("records put: %s is not JSON", args[2])
			}
			var atts []siteapi.AttachmentInput
			for _, a := range attach {
				name, ref, ok := strings.Cut(a, "=")
				if !ok || name == "" || ref == "" {
					return fmt.Errorf("records put: --attach %q: want NAME=REF", a)
				}
				atts = append(atts, siteapi.AttachmentInput{Name: name, Ref: ref})
			}
			for _, name := range keep {
				atts = append(atts, siteapi.AttachmentInput{Name: name, Keep: true})
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				rec, err := t.client().Put(ctx, args[0], args[1], raw, atts...)
				if err != nil {
					return err
				}
				return f.printRecord(cmd.OutOrStdout(), rec)
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringArrayVar(&attach, "attach", nil, "attach an uploaded blob: NAME=REF (repeatable)")
	cmd.Flags().StringArrayVar(&keep, "keep", nil, "keep the latest version's attachment NAME (repeatable)")
	return cmd
}

func newRecordsDeleteCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:     "delete REGISTRY ID",
		Short:   "Delete a record: a tombstone version (its history stays in the ledger)",
		Example: `  chancery records delete business B-100 --state ./dr --official registrar`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, t *target) error {
				rec, err := t.client().Delete(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				return f.printRecord(cmd.OutOrStdout(), rec)
			})
		},
	}
	f.register(cmd, "official")
	return cmd
}

func newRecordsHistoryCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:     "history REGISTRY ID",
		Short:   "List every version of a record: version, ledger index, time, epoch",
		Example: `  chancery records history population DR-0001 --state ./dr --official registrar`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, t *target) error {
				vs, err := t.client().History(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, siteapi.HistoryResponse{Registry: args[0], ID: args[1], Versions: vs})
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tLEDGER INDEX\tTIME\tEPOCH\t")
				for _, v := range vs {
					del := ""
					if v.Deleted {
						del = "deleted"
					}
					fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\n", v.Version, v.Index, v.Time.UTC().Format(time.RFC3339), v.Epoch, del)
				}
				return tw.Flush()
			})
		},
	}
	f.register(cmd, "official")
	return cmd
}

func newRecordsFindCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:     "find REGISTRY FIELD VALUE",
		Short:   "List the live records whose index field has a value",
		Example: `  chancery records find population last_name Berg --state ./dr --official registrar`,
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, t *target) error {
				recs, err := t.client().Find(ctx, args[0], args[1], args[2])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, siteapi.FindResponse{Registry: args[0], Records: recs})
				}
				fmt.Fprintf(w, "%d record(s) in %s with %s = %q\n", len(recs), args[0], args[1], args[2])
				for _, r := range recs {
					fmt.Fprintln(w)
					if err := f.printRecord(w, r); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	f.register(cmd, "official")
	return cmd
}

// printRecord prints one record version: JSON for a program, or a header
// line and the indented record for a person.
func (f *siteFlags) printRecord(w io.Writer, rec *registry.Record) error {
	if f.jsonOutput(w) {
		return printJSON(w, rec)
	}
	state := ""
	if rec.Deleted {
		state = " (deleted)"
	}
	fmt.Fprintf(w, "%s/%s version %d%s, ledger index %d, epoch %d, %s\n", rec.Registry, rec.ID, rec.Version, state,
		rec.Index, rec.Epoch, rec.Time.UTC().Format(time.RFC3339))
	for _, a := range rec.Attachments {
		fmt.Fprintf(w, "  attachment %s (%s)\n", a.Name, ui.HumanBytes(a.Size))
	}
	if len(rec.Data) > 0 {
		var v any
		if err := json.Unmarshal(rec.Data, &v); err != nil {
			return fmt.Errorf("record %s/%s: %w", rec.Registry, rec.ID, err)
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(b))
	}
	return nil
}
