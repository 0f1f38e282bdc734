package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
)

// DrillRow is one drill-report entry of a ledger and what its check found.
type DrillRow struct {
	Index    uint64                  `json:"ledger_index"`
	Recorded time.Time               `json:"recorded_at"`
	Report   *continuity.DrillReport `json:"report,omitempty"`
	// Check is "ok", "unchecked" (no charter) or what is wrong.
	Check string `json:"check"`
	// Bad: the report does not check out (Check says why).
	Bad bool `json:"-"`
}

// DrillAudit is the drill reports of a ledger, checked.
type DrillAudit struct {
	// Checkpoint is the signed tree the reports were read from; its
	// signature was checked when the ledger has a charter.
	Checkpoint *Checkpoint
	Rows       []*DrillRow
	// Bad counts the rows that do not check out.
	Bad int
}

// DrillReports reads every drill-report entry of the ledger and, with a
// charter, checks each: its signature by the drilled site's checkpoint
// key (continuity.VerifyDrillReport), a drill order for that site earlier
// in the ledger, and the entry's inclusion in the checkpoint's tree,
// whose signature is checked with the charter's site keys. Without a
// charter the reports are only parsed, and every row says "unchecked".
func (l *Ledger) DrillReports(ctx context.Context) (*DrillAudit, error) {
	cp, err := l.ReadCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	// Drill orders seen so far (id → site): a report must follow its order.
	orders := map[string]string{}
	a := &DrillAudit{Checkpoint: cp}
	err = ledger.Scan(ctx, l.Fetcher, 0, cp.Size, func(idx uint64, raw []byte) error {
		if len(raw) < ledger.EntryHeaderSize {
			return nil
		}
		t := ledger.Type(raw[1])
		if t != ledger.TypeOrder && t != ledger.TypeDrillReport {
			return nil
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		if t == ledger.TypeOrder {
			if so, err := continuity.ParseSignedOrder(e.Payload); err == nil && so.Order.Action == charter.ActionDrill {
				orders[so.Order.ID] = so.Order.Site
			}
			return nil
		}
		a.Rows = append(a.Rows, checkDrillRow(l.Charter, orders, idx, e))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the ledger: %w", err)
	}
	if l.Charter != nil {
		prover := ledger.NewProver(l.Fetcher, 0)
		for _, r := range a.Rows {
			if r.Bad {
				continue
			}
			if _, err := prover.ReadProven(ctx, cp.Checkpoint, r.Index); err != nil {
				r.Check, r.Bad = "NOT IN THE SIGNED TREE: "+err.Error(), true
			}
		}
	}
	for _, r := range a.Rows {
		if r.Bad {
			a.Bad++
		}
	}
	return a, nil
}

func checkDrillRow(c *charter.Charter, orders map[string]string, idx uint64, e ledger.Entry) *DrillRow {
	row := &DrillRow{Index: idx, Recorded: e.Time.UTC(), Check: "unchecked"}
	if c == nil {
		r, _, _, err := continuity.ParseDrillReport(e.Payload)
		if err != nil {
			row.Check, row.Bad = "UNREADABLE: "+err.Error(), true
		}
		row.Report = r
		return row
	}
	r, err := continuity.VerifyDrillReport(c, e.Payload)
	if err != nil {
		row.Check, row.Bad = "BAD: "+err.Error(), true
		if r, _, _, err := continuity.ParseDrillReport(e.Payload); err == nil {
			row.Report = r
		}
		return row
	}
	row.Report = r
	switch s, ok := orders[r.Order]; {
	case !ok:
		row.Check, row.Bad = fmt.Sprintf("BAD: no drill order %s before it in the ledger", r.Order), true
	case s != r.Site:
		row.Check, row.Bad = fmt.Sprintf("BAD: drill order %s names site %s, not %s", r.Order, s, r.Site), true
	default:
		row.Check = "ok"
	}
	return row
}
