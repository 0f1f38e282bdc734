package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

type importOptions struct {
	file           string
	stateDir       string
	site           string
	passphraseFile string
	batch          int
	// stdin and stderr are where a passphrase is asked for on a terminal.
	stdin  io.Reader
	stderr io.Writer
}

func newImportCmd() *cobra.Command {
	var o importOptions
	cmd := &cobra.Command{
		Use:   "import FILE.jsonl [--state D] [--site home]",
		Short: "Load records from a JSONL file into the registries, in this process",
		Long: `Import loads records into a guest's registries directly from the state
directory, without going through a running site (stop the site first: it
holds the ledger). Each line of FILE is one JSON object:

  {"registry": "population", "id": "DR-0001", "record": {...},
   "attachments": {"birth-certificate.pdf": "scans/DR-0001.pdf"}}

Attachment paths are relative to FILE's directory. Records are validated
and sealed in parallel and committed many to a ledger commit. A bad line
stops the import with an error naming its line number: every line before
it is committed, nothing after it.

An import can be resumed: fix the bad line and run the same command on the
same file again. A line whose record's latest version already holds exactly
that content (the same record bytes and attachments, compared with the
version's sealed commitment and attachment references) is skipped, so the
rerun writes only the lines the first run did not commit, and no record
gets a duplicate version. A file that sets one record several times is
resumable only from its last line for that record on.`,
		Example: `  chancery import people.jsonl --state ./demo-state --passphrase-file ~/.chancery-pass
  chancery import people.jsonl --state ./demo-state --batch 4096   # asks for the passphrase on a terminal`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			o.stdin, o.stderr = cmd.InOrStdin(), cmd.ErrOrStderr()
			return runImport(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.stateDir, "state", ".", "state directory")
	cmd.Flags().StringVar(&o.site, "site", "home", "site whose ledger and blob store receive the records")
	cmd.Flags().StringVar(&o.passphraseFile, "passphrase-file", "", "file holding the passphrase of the site's keys (default: $CHANCERY_PASSPHRASE, or asked on a terminal)")
	cmd.Flags().IntVar(&o.batch, "batch", 0, "records per ledger commit (0: 1024)")
	return cmd
}

func runImport(ctx context.Context, o importOptions, out io.Writer) error {
	pass, err := readPassphrase(o.passphraseFile, o.stdin, cmp.Or(o.stderr, out))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer clear(pass)
	progress := newImportProgress(out)
	res, err := guest.Import(ctx, guest.ImportOptions{
		File:     o.file,
		Local:    guest.LocalOptions{StateDir: o.stateDir, Site: o.site, Passphrase: pass},
		Batch:    o.batch,
		Progress: progress.update,
	})
	progress.finish()
	if res.Skipped > 0 {
		fmt.Fprintf(out, "skipped %d lines whose records already hold that content (imported before)\n", res.Skipped)
	}
	if res.Records > 0 {
		fmt.Fprintf(out, "imported %d records (%d attachments) into ledger entries %d–%d in %s: %.0f records/s\n",
			res.Records, res.Attachments, res.First, res.Last, res.Elapsed.Round(time.Millisecond), float64(res.Records)/max(res.Elapsed.Seconds(), 1e-9))
	}
	if err != nil {
		if res.Records > 0 {
			fmt.Fprintf(out, "stopped: the records above are committed, nothing from the bad line on\n")
		}
		return err
	}
	if res.Records == 0 && res.Skipped == 0 {
		fmt.Fprintln(out, "imported no records: the file is empty")
	}
	return nil
}

// importProgress shows a bar over the file's bytes on a terminal, and a
// line every tenth of the file otherwise, so that logs of a long import
// show it moving.
type importProgress struct {
	out  io.Writer
	bar  *progressbar.ProgressBar
	next int64
	step int64
}

func newImportProgress(out io.Writer) *importProgress {
	return &importProgress{out: out}
}

func (p *importProgress) update(records int, done, total int64) {
	if p.bar == nil && p.step == 0 {
		if f, ok := p.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(p.out),
				progressbar.OptionSetDescription("importing"), progressbar.OptionShowBytes(true),
				progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		} else {
			p.step = max(total/10, 1)
			p.next = p.step
		}
	}
	if p.bar != nil {
		p.bar.Set64(done)
		return
	}
	if done >= p.next && total > 0 {
		fmt.Fprintf(p.out, "imported %d records, %d%% of the file\n", records, done*100/total)
		for p.next <= done {
			p.next += p.step
		}
	}
}

func (p *importProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
