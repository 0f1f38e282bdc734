package siteapi

import "time"

// PostgresStatus is a guest's PostgreSQL connector as the site that runs
// it sees it: the fields of connect/postgres.Status, and whether it runs
// here now. The connector runs only where the guest is the active,
// unsealed writer; elsewhere Running is false and Note says why.
type PostgresStatus struct {
	Running   bool      `json:"running"`
	Note      string    `json:"note,omitempty"` // why it does not run here now
	Slot      string    `json:"slot"`
	Phase     string    `json:"phase,omitempty"` // starting, snapshot, stream, stopped
	Connected bool      `json:"connected"`
	LSN       string    `json:"lsn,omitempty"` // the position in the ledger
	Confirmed string    `json:"confirmed_lsn,omitempty"`
	ServerLSN string    `json:"server_lsn,omitempty"`
	LagBytes  uint64    `json:"lag_bytes"`
	LagMillis int64     `json:"lag_ms"`
	Snapshot  int64     `json:"snapshot_rows"`
	Streamed  int64     `json:"streamed_changes"`
	Txns      int64     `json:"transactions"`
	Retries   int64     `json:"reconnects"`
	LastError string    `json:"last_error,omitempty"`
	Updated   time.Time `json:"updated,omitzero"`
}
