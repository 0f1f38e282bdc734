package replica_test

import (
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/replica"
)

func TestCanCatchUpFrom(t *testing.T) {
	c := &charter.Charter{Registries: []charter.Registry{
		{Name: "population", Sites: []string{"home", "north", "south"}},
		{Name: "land", Sites: []string{"home", "north"}},
		{Name: "acts", Sites: []string{"home", "south"}},
	}}
	for _, tc := range []struct {
		site, peer string
		ok         bool
	}{
		{"north", "home", true},
		{"south", "home", true},
		{"south", "north", false}, // north holds only stubs of acts
		{"north", "south", false}, // south holds only stubs of land
		{"home", "north", false},
	} {
		err := replica.CanCatchUpFrom(c, tc.site, tc.peer)
		if (err == nil) != tc.ok {
			t.Errorf("%s from %s: %v, want ok=%v", tc.site, tc.peer, err, tc.ok)
		}
	}
}
