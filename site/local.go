package site

import (
	"context"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
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
