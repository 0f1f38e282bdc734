package found

import (
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/notice"
)

// demoNotices gives the Demo Republic its notice classes
// (services.notices, docs/notices.md): who must sign a public notice of
// each class. Continuity notices ("the government is operating from
// abroad") take what an activation takes: a minister and the cio.
func demoNotices(c *charter.Charter) error {
	return c.SetService("notices", notice.Config{Classes: map[string]charter.Rule{
		"emergency":  {Threshold: 1, Of: []string{"minister", "cio"}},
		"continuity": {Threshold: 2, Of: []string{"minister", "cio"}, Require: map[string]int{"minister": 1}},
		"legal-act":  {Threshold: 2, Of: []string{"minister"}},
	}, Cosigners: 1})
}
