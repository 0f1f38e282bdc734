package found

import (
	"go.yaml.in/yaml/v3"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/procedure"
)

// addProcedures declares the Demo Republic's procedures (services/procedure
// demo.yaml) in c's services.procedures, and the two registries they need
// beyond the five: cases and pensions, held by every site so that an
// activated embassy runs cases and payment runs as the home does.
func addProcedures(c *charter.Charter) {
	var sites []string
	for _, s := range c.Sites {
		sites = append(sites, s.ID)
	}
	c.Registries = append(c.Registries, procedure.DemoRegistries(sites)...)
	var doc map[string]any
	if err := yaml.Unmarshal(procedure.DemoYAML(), &doc); err != nil {
		// The document is embedded and tested (services/procedure):
		// failing here is a build of broken data, not a runtime condition.
		panic("found: the demo procedures do not decode: " + err.Error())
	}
	if c.Services == nil {
		c.Services = map[string]any{}
	}
	c.Services[procedure.ServiceName] = doc
}
