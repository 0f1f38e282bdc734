package charter

import (
	"fmt"
	"strings"
)

// Summary describes c for a person: parties, sites per host, officials,
// custodians, registries, quorum rules in words, version and hash. It is
// what `chancery charter show` prints; it says nothing about signatures'
// validity (see VerifySignatures).
func Summary(c *Charter) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("Charter of %s (%s), version %d\n", c.Guest.Name, c.Guest.ID, c.Version)
	p("  hash      %s\n", c.HashHex())
	if c.Previous != "" {
		p("  previous  %s\n", c.Previous)
	}
	p("  origin    %s\n", c.Guest.Origin)

	p("\nSites\n")
	if home, ok := c.Home(); ok {
		p("  home: %s  %s  (%s)%s\n", home.ID, home.URL, home.Jurisdiction, quotaNote(*home))
	}
	for _, h := range c.Hosts {
		p("  host %s (%s):\n", h.Name, h.ID)
		sites := c.SitesOf(h.ID)
		if len(sites) == 0 {
			p("    no sites\n")
		}
		for _, s := range sites {
			p("    embassy %s  %s  (%s)%s\n", s.ID, s.URL, s.Jurisdiction, quotaNote(s))
		}
	}

	p("\nOfficials\n")
	for _, o := range c.Officials {
		p("  %s (%s): %s\n", o.Name, o.ID, strings.Join(o.Roles, ", "))
	}

	p("\nCustodians: any %d of %d unseal a site\n", c.Custodians.Threshold, len(c.Custodians.Members))
	for _, m := range c.Custodians.Members {
		p("  %s (%s)\n", m.Name, m.ID)
	}

	p("\nRegistries\n")
	if len(c.Registries) == 0 {
		p("  none\n")
	}
	for _, r := range c.Registries {
		sync := "async replication"
		if r.Sync == SyncQuorum {
			sync = fmt.Sprintf("acknowledged when %d non-home site(s) hold it", r.QuorumSites)
		}
		p("  %s [%s] at %s; %s", r.Name, r.Classification, strings.Join(r.Sites, ", "), sync)
		if len(r.Index) > 0 {
			p("; indexed by %s", strings.Join(r.Index, ", "))
		}
		p("\n")
	}

	p("\nQuorum\n")
	for _, a := range Actions() {
		if r, ok := c.Rule(a); ok {
			p("  %-12s %s\n", a, r)
		}
	}

	s := c.Safeguards
	p("\nSafeguards\n")
	p("  a host must give %s notice before suspending the guest\n", s.SuspendNotice)
	p("  a host must retain the data for %s\n", s.Retention)
	if len(s.OperatorMay) == 0 {
		p("  operators may do nothing beyond running the site\n")
	} else {
		p("  operators may: %s; nothing else\n", strings.Join(s.OperatorMay, ", "))
	}

	p("\nSignatures (unverified here; run `chancery charter verify`)\n")
	if len(c.Signatures) == 0 {
		p("  none\n")
	}
	for _, sg := range c.Signatures {
		p("  %s %s\n", sg.Kind, sg.Signer)
	}
	return b.String()
}

// quotaNote is the quota as the charter spells it, since that is what the
// parties read when they signed.
func quotaNote(s Site) string {
	if s.Quota == "" {
		return ""
	}
	return "  quota " + s.Quota
}
