package found

import "github.com/chancery-gov/chancery/charter"

// The Demo Republic's civil service register lives in a PostgreSQL
// database at home; the charter maps its table to a registry, so the
// copy abroad follows it (demo --postgres, docs/postgres.md).
const (
	// PostgresTable is the source table, PostgresRegistry its registry.
	PostgresTable    = "public.civil_servants"
	PostgresRegistry = "civil-service"
	// PostgresState holds the connector's position.
	PostgresState = "connector-state"
	// PostgresSlot and PostgresPublication are what the source's
	// administrator and the connector create.
	PostgresSlot        = "chancery_demo"
	PostgresPublication = "chancery_demo"
)

// addPostgres declares the registries the connector writes and its
// services.postgres section (connect/postgres.Config's YAML form; the
// found tests decode and validate it): both registries are placed at
// every site, so whichever site writes holds them.
func addPostgres(c *charter.Charter) {
	all := []string{"home", "embassy-north", "embassy-south"}
	c.Registries = append(c.Registries,
		charter.Registry{Name: PostgresRegistry, Classification: charter.ClassInternal, Sites: all, Sync: charter.SyncAsync},
		charter.Registry{Name: PostgresState, Classification: charter.ClassInternal, Sites: all, Index: []string{"slot"}, Sync: charter.SyncAsync})
	if c.Services == nil {
		c.Services = map[string]any{}
	}
	c.Services["postgres"] = map[string]any{"slot": PostgresSlot, "publication": PostgresPublication, "state_registry": PostgresState,
		"truncate": "refuse", "tables": []any{map[string]any{"table": PostgresTable, "registry": PostgresRegistry}}}
}
