package ui

import "time"

// ConnectorRow is the guest's PostgreSQL connector at the serving site:
// whether it runs here, where it stands and how far behind the source
// it is (templates/connectors.html).
type ConnectorRow struct {
	Slot      string
	Running   bool
	Note      string // why it does not run here now
	Phase     string // snapshot, stream, stopped
	Connected bool
	LSN       string // the position in the ledger
	ServerLSN string // the source's WAL end, last heard
	LagBytes  uint64
	LagMillis int64
	Snapshot  int64 // rows written by snapshots
	Streamed  int64 // changes applied from replication
	Txns      int64
	Retries   int64
	LastError string
	Updated   time.Time
}

// StateClass is the CSS class of the connector's badge.
func (c ConnectorRow) StateClass() string {
	switch {
	case c.Running && c.Connected && c.LastError == "":
		return "ok"
	case c.Running || c.LastError == "":
		return "info"
	default:
		return "bad"
	}
}
