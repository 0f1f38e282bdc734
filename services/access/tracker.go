package access

import (
	"context"
	"fmt"

	"github.com/chancery-gov/chancery/registry"
)

// Owned lists a citizen's records, registry → record ids: their person
// record (personRegistry, keyed by the person id) and every record of the
// citizens' registries whose link field names them. The data tracker
// lists the reads of these.
func (r *Rules) Owned(ctx context.Context, regs *registry.Registries, personRegistry, person string) (map[string][]string, error) {
	owned := map[string][]string{personRegistry: {person}}
	for _, reg := range r.CitizenRegistries() {
		recs, err := regs.Find(ctx, reg, r.LinkField(reg), person)
		if err != nil {
			return nil, fmt.Errorf("data tracker: registry %s: %w", reg, err)
		}
		for _, rec := range recs {
			owned[reg] = append(owned[reg], rec.ID)
		}
	}
	return owned, nil
}
