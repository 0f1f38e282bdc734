package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/internal/demo/demogen"
)

func newDemoGenCmd() *cobra.Command {
	var o demogen.Options
	var out string
	cmd := &cobra.Command{
		Use:   "gen [--persons N] [--seed S] [--out FILE.jsonl|-] [--deeds DIR]",
		Short: "Generate the Demo Republic's registry data as JSON Lines, deterministically",
		Long: `Gen writes the Demo Republic's registries as JSON Lines, one record to
import per line:

  {"registry":"population","id":"DR-1438670455","record":{...},"attachments":{...}}

First the legal acts (persons/1000 + 20), then for each citizen their
population record (~550 bytes, with an Ed25519 eID public key) followed by
their identity documents (~0.8 per person), land parcels (~0.3) and
businesses (~0.05). Every record holds its registry's index fields from the
charter. The same --persons and --seed always give the same bytes.

With --deeds DIR every parcel gets a scanned title deed (100 KB - 5 MB,
about 1.25 MB on average, so roughly 375 KB of disk per person) under
DIR/NNN/, attached to its record by path; about 5% of parcels also carry a
byte-identical notarised copy.

Generation streams: memory stays small for any --persons, up to 100 million.
The cost is dominated by deriving one Ed25519 key per citizen.

Progress goes to stderr: a bar on a terminal, otherwise a line per 10%.`,
		Example: `  chancery demo gen --persons 10000 --out republic.jsonl
  chancery demo gen --persons 1000 --seed 7 --deeds ./deeds --out - | head`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Deeds = o.DeedDir != ""
			if o.Persons <= 0 || o.Persons > demogen.MaxPersons {
				return fmt.Errorf("demo gen: --persons must be 1..%d", demogen.MaxPersons)
			}
			return runDemoGen(cmd, o, out)
		},
	}
	cmd.Flags().IntVar(&o.Persons, "persons", demogen.DefaultPersons, "number of citizens")
	cmd.Flags().Uint64Var(&o.Seed, "seed", 1, "seed; the same seed gives byte-identical output")
	cmd.Flags().StringVar(&out, "out", "-", "output file (JSON Lines), or - for stdout")
	cmd.Flags().StringVar(&o.DeedDir, "deeds", "", "write scanned title deeds for land parcels into this directory and attach them")
	return cmd
}

func runDemoGen(cmd *cobra.Command, o demogen.Options, out string) (err error) {
	ctx := cmd.Context()
	errw := cmd.ErrOrStderr()
	var w io.Writer = cmd.OutOrStdout()
	if out != "-" {
		// Write beside the target and rename on success, so a cancelled
		// run never leaves a truncated file under the requested name.
		f, cerr := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
		if cerr != nil {
			return fmt.Errorf("demo gen: %w", cerr)
		}
		defer func() {
			if err != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}()
		if err = f.Chmod(0o644); err != nil {
			return fmt.Errorf("demo gen: %w", err)
		}
		w = f
		defer func() {
			if err == nil {
				if err = f.Close(); err == nil {
					err = os.Rename(f.Name(), out)
				}
				if err != nil {
					os.Remove(f.Name())
					err = fmt.Errorf("demo gen: %w", err)
				}
			}
		}()
	}
	if o.DeedDir != "" {
		if err := os.MkdirAll(o.DeedDir, 0o755); err != nil {
			return fmt.Errorf("demo gen: %w", err)
		}
	}

	cw := &lineCounter{w: w}
	start := time.Now()
	progress := demoGenProgress(errw, o.Persons, start)
	if err := demogen.WriteJSONL(ctx, o, cw, progress.update); err != nil {
		progress.finish()
		return fmt.Errorf("demo gen: %w", err)
	}
	progress.finish()
	el := time.Since(start)
	fmt.Fprintf(errw, "demo gen: %d persons, %d records, %.1f MB in %s (%.0f persons/s, %.0f records/s)\n",
		o.Persons, cw.lines, float64(cw.n)/1e6, el.Round(time.Millisecond),
		float64(o.Persons)/el.Seconds(), float64(cw.lines)/el.Seconds())
	return nil
}

// genProgress reports progress on stderr: a progress bar on a terminal,
// otherwise a line at every 10%.
type genProgress struct {
	update func(done, total int)
	finish func()
}

func demoGenProgress(w io.Writer, total int, start time.Time) genProgress {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("generating"),
			progressbar.OptionSetItsString("persons"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		return genProgress{
			update: func(done, _ int) { _ = bar.Set(done) },
			finish: func() {
				if !bar.IsFinished() {
					_ = bar.Exit() // cancelled or failed: end the bar's line
					fmt.Fprintln(w)
				}
			},
		}
	}
	next := 1
	return genProgress{
		update: func(done, total int) {
			if total <= 0 {
				return
			}
			pct := done * 10 / total
			if pct < next {
				return
			}
			next = pct + 1
			fmt.Fprintf(w, "demo gen: %3d%% (%d/%d persons, %s)\n", pct*10, done, total, time.Since(start).Round(time.Second))
		},
		finish: func() {},
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// lineCounter counts the bytes and lines written through it.
type lineCounter struct {
	w        io.Writer
	n, lines int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	for _, b := range p[:n] {
		if b == '\n' {
			c.lines++
		}
	}
	return n, err
}
