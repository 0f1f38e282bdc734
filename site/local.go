package site

import (
	"context"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/registry"
)

// Local is guest.Local: one guest's state opened in this process with its
// keys. The name stays here for the callers that open a home's state
// without serving it (chancery import, the demo, tests).
type Local = guest.Local

// LocalOptions is guest.LocalOptions.
type LocalOptions = guest.LocalOptions

// OpenLocal is guest.OpenLocal: a guest's state opened for one site.
func OpenLocal(ctx context.Context, o LocalOptions) (*Local, error) { return guest.OpenLocal(ctx, o) }

// GuestDir is where an embassy keeps one guest: DataDir/guests/<guest>.
func GuestDir(dataDir, id string) string { return guest.GuestDir(dataDir, id) }

// EscrowDir is guest.EscrowDir: where a state keeps the sites' wrapped
// outer keys.
func EscrowDir(l state.Layout) string { return guest.EscrowDir(l) }

// OuterKeyFile is guest.OuterKeyFile: the escrow file of a site's wrapped
// outer key.
func OuterKeyFile(site string) string { return guest.OuterKeyFile(site) }

// DrillSampleSize bounds how many record entries a drill opens and checks
// (guest.DrillSampleSize).
const DrillSampleSize = guest.DrillSampleSize

// NoticeKindSuspension is guest.NoticeKindSuspension: the kind of a
// host's suspension notice in the ledger.
const NoticeKindSuspension = guest.NoticeKindSuspension

// SuspensionNotice is guest.SuspensionNotice, the ledger notice of a
// host's suspension.
type SuspensionNotice = guest.SuspensionNotice

// Import is guest.Import: a JSONL file loaded into a guest's registries
// in this process (chancery import).
func Import(ctx context.Context, o ImportOptions) (registry.ImportResult, error) {
	return guest.Import(ctx, o)
}

// ImportOptions is guest.ImportOptions.
type ImportOptions = guest.ImportOptions

// Reconcile is guest.Reconcile: a home's ledger forked from the active
// site's, its entries past the fork reported and its ledger set aside
// (chancery reconcile).
func Reconcile(ctx context.Context, o ReconcileOptions) (*ReconcileReport, error) {
	return guest.Reconcile(ctx, o)
}

// ReconcileOptions is guest.ReconcileOptions.
type ReconcileOptions = guest.ReconcileOptions

// ReconcileReport is guest.ReconcileReport.
type ReconcileReport = guest.ReconcileReport

// ForkedEntry is guest.ForkedEntry.
type ForkedEntry = guest.ForkedEntry
