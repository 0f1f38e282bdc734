package message_test

import (
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/message"
)

// TestReadConfig: services.messages takes its defaults, and is refused,
// naming the field, when it names no registry of the charter or one that
// does not index "person" — a message must be findable for its citizen
// by a blinded value only.
func TestReadConfig(t *testing.T) {
	base := func() *charter.Charter {
		return &charter.Charter{Guest: charter.Guest{ID: "g"}, Registries: []charter.Registry{
			{Name: "people", Index: []string{"national_id"}},
			{Name: "messages", Index: []string{"person"}},
			{Name: "letters", Index: []string{"to"}},
		}}
	}
	c := base()
	if _, err := message.ReadConfig(c); err == nil || !strings.Contains(err.Error(), "services.messages") {
		t.Fatalf("no section: %v", err)
	}
	if err := c.SetService(message.Section, message.Config{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := message.ReadConfig(c)
	if err != nil || cfg.Registry != "messages" || cfg.People != "people" {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	for _, tc := range []struct {
		cfg  message.Config
		want string
	}{
		{message.Config{Registry: "letters"}, `must index the field "person"`},
		{message.Config{Registry: "nowhere"}, "services.messages.registry"},
		{message.Config{People: "nobody"}, "services.messages.people"},
	} {
		c := base()
		if err := c.SetService(message.Section, tc.cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := message.ReadConfig(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
