package notice

import (
	"encoding/json"
	"fmt"
)

// ParseJSONProofs returns the proven notices a JSON Feed written by JSON
// carries (each item's "_chancery"), for a verifier that has only the feed.
// It checks nothing but the shape: Verifier.Verify checks each notice.
func ParseJSONProofs(b []byte) ([]*Proven, error) {
	var f struct {
		Version string `json:"version"`
		Items   []struct {
			ID       string  `json:"id"`
			Chancery *Proven `json:"_chancery"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("json feed: %w", err)
	}
	if f.Version != "https://jsonfeed.org/version/1.1" {
		return nil, fmt.Errorf("json feed: version %q, want https://jsonfeed.org/version/1.1", f.Version)
	}
	out := make([]*Proven, 0, len(f.Items))
	for i, it := range f.Items {
		if it.Chancery == nil {
			return nil, fmt.Errorf("json feed item %d (%s): no _chancery proof", i, it.ID)
		}
		out = append(out, it.Chancery)
	}
	return out, nil
}
