package charter

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
)

// The canonical encoding (docs/charter.md, "Canonical encoding") is
//
//	"chancery-charter/v1\n" || JSON
//
// where JSON is the object below with its fields in the order declared,
// no insignificant whitespace, no trailing newline, HTML characters not
// escaped, map keys sorted by byte value, lists of entities sorted by id
// (by name for registries) and sets of names sorted, because their order
// carries no meaning; registries' index lists keep their order, because it
// does. Durations are integers of nanoseconds, so "720h" and "720h0m0s"
// sign the same, and quotas integers of bytes. Every member is present
// except a site's quota, which is left out when the site has none.
// Signatures are left out: they sign these bytes.
//
// These types exist only to pin that layout; changing one changes every
// charter hash, so don't.

type canonCharter struct {
	Format     string               `json:"format"`
	Version    int                  `json:"version"`
	Previous   string               `json:"previous"`
	Guest      canonGuest           `json:"guest"`
	Hosts      []canonHost          `json:"hosts"`
	Sites      []canonSite          `json:"sites"`
	Officials  []canonOfficial      `json:"officials"`
	Custodians canonCustodians      `json:"custodians"`
	Registries []canonRegistry      `json:"registries"`
	Quorum     map[string]canonRule `json:"quorum"`
	Safeguards canonSafeguards      `json:"safeguards"`
	// StateKeys and Services are left out when empty, so charters signed
	// before they existed keep their canonical bytes.
	StateKeys []canonStateKey `json:"state_keys,omitempty"`
	Services  json.RawMessage `json:"services,omitempty"`
}

type canonStateKey struct {
	Purpose    string `json:"purpose"`
	Alg        string `json:"alg"`
	Generation uint32 `json:"generation"`
	Key        string `json:"key"`
}

type canonGuest struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Origin string `json:"origin"`
}

type canonHost struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Key  string `json:"key"`
}

type canonSite struct {
	ID            string `json:"id"`
	Host          string `json:"host"`
	Role          string `json:"role"`
	URL           string `json:"url"`
	Jurisdiction  string `json:"jurisdiction"`
	CheckpointKey string `json:"checkpoint_key"`
	TLSKey        string `json:"tls_key"`
	// Quota is in bytes, so "64GiB" and "65536MiB" sign the same. It is
	// omitted when zero (no quota) so that charters signed before quotas
	// existed keep their canonical bytes and stay valid.
	Quota int64 `json:"quota,omitempty"`
}

type canonOfficial struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	Key   string   `json:"key"`
}

type canonCustodians struct {
	Threshold int              `json:"threshold"`
	Members   []canonCustodian `json:"members"`
	// Package and Commitment are left out when empty, so charters signed
	// before they existed keep their canonical bytes.
	Package    string `json:"package,omitempty"`
	Commitment string `json:"commitment,omitempty"`
}

type canonCustodian struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Recipient string `json:"recipient"`
}

type canonRegistry struct {
	Name           string   `json:"name"`
	Classification string   `json:"classification"`
	Sites          []string `json:"sites"`
	Index          []string `json:"index"`
	Sync           string   `json:"sync"`
	QuorumSites    int      `json:"quorum_sites"`
}

type canonRule struct {
	Threshold int            `json:"threshold"`
	Of        []string       `json:"of"`
	Require   map[string]int `json:"require"`
}

type canonSafeguards struct {
	SuspendNotice int64    `json:"suspend_notice"`
	OperatorMay   []string `json:"operator_may"`
	Retention     int64    `json:"retention"`
}

// CanonicalBytes returns the deterministic encoding of c without its
// signatures: the bytes every signature covers. It is defined for valid
// charters; for an invalid one it is still deterministic but means nothing.
func (c *Charter) CanonicalBytes() []byte {
	cc := canonCharter{
		Format:   c.Format,
		Version:  c.Version,
		Previous: c.Previous,
		Guest:    canonGuest{ID: c.Guest.ID, Name: c.Guest.Name, Origin: c.Guest.Origin},
		Custodians: canonCustodians{
			Threshold:  c.Custodians.Threshold,
			Members:    make([]canonCustodian, 0, len(c.Custodians.Members)),
			Package:    c.Custodians.Package,
			Commitment: c.Custodians.Commitment,
		},
		Hosts:      make([]canonHost, 0, len(c.Hosts)),
		Sites:      make([]canonSite, 0, len(c.Sites)),
		Officials:  make([]canonOfficial, 0, len(c.Officials)),
		Registries: make([]canonRegistry, 0, len(c.Registries)),
		Quorum:     make(map[string]canonRule, len(c.Quorum)),
		Safeguards: canonSafeguards{
			SuspendNotice: int64(c.Safeguards.SuspendNoticePeriod()),
			OperatorMay:   sortedSet(c.Safeguards.OperatorMay),
			Retention:     int64(c.Safeguards.RetentionPeriod()),
		},
	}
	for _, h := range c.Hosts {
		cc.Hosts = append(cc.Hosts, canonHost(h))
	}
	for _, s := range c.Sites {
		quota, err := s.QuotaBytes()
		if err != nil {
			// Invalid charter: keep the bytes distinct from "no quota".
			quota = -1
		}
		cc.Sites = append(cc.Sites, canonSite{
			ID: s.ID, Host: s.Host, Role: s.Role, URL: s.URL, Jurisdiction: s.Jurisdiction,
			CheckpointKey: s.CheckpointKey, TLSKey: s.TLSKey, Quota: quota,
		})
	}
	for _, o := range c.Officials {
		cc.Officials = append(cc.Officials, canonOfficial{ID: o.ID, Name: o.Name, Roles: sortedSet(o.Roles), Key: o.Key})
	}
	for _, m := range c.Custodians.Members {
		cc.Custodians.Members = append(cc.Custodians.Members, canonCustodian(m))
	}
	for _, r := range c.Registries {
		index := slices.Clone(r.Index)
		if index == nil {
			index = []string{}
		}
		cc.Registries = append(cc.Registries, canonRegistry{
			Name: r.Name, Classification: r.Classification, Sites: sortedSet(r.Sites),
			Index: index, Sync: r.Sync, QuorumSites: r.QuorumSites,
		})
	}
	for a, r := range c.Quorum {
		req := make(map[string]int, len(r.Require))
		for k, v := range r.Require {
			req[k] = v
		}
		cc.Quorum[a] = canonRule{Threshold: r.Threshold, Of: sortedSet(r.Of), Require: req}
	}
	for _, k := range c.StateKeys {
		cc.StateKeys = append(cc.StateKeys, canonStateKey(k))
	}
	slices.SortStableFunc(cc.StateKeys, func(a, b canonStateKey) int {
		if d := strings.Compare(a.Purpose, b.Purpose); d != 0 {
			return d
		}
		return int(a.Generation) - int(b.Generation)
	})
	if s, err := canonServices(c.Services); err == nil {
		cc.Services = s
	} else {
		// Invalid charter (Validate refuses it): keep the bytes distinct
		// from "no services".
		cc.Services = json.RawMessage(`"invalid"`)
	}
	byID := func(a, b string) int { return strings.Compare(a, b) }
	slices.SortStableFunc(cc.Hosts, func(a, b canonHost) int { return byID(a.ID, b.ID) })
	slices.SortStableFunc(cc.Sites, func(a, b canonSite) int { return byID(a.ID, b.ID) })
	slices.SortStableFunc(cc.Officials, func(a, b canonOfficial) int { return byID(a.ID, b.ID) })
	slices.SortStableFunc(cc.Custodians.Members, func(a, b canonCustodian) int { return byID(a.ID, b.ID) })
	slices.SortStableFunc(cc.Registries, func(a, b canonRegistry) int { return byID(a.Name, b.Name) })

	var buf bytes.Buffer
	buf.WriteString(Format + "\n")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cc); err != nil {
		// Only strings, integers, slices and maps with string keys: the
		// encoder cannot fail on them.
		panic("charter: canonical encoding failed: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Hash returns SHA-256 of CanonicalBytes: the value the next version's
// previous field holds.
func (c *Charter) Hash() [32]byte { return sha256.Sum256(c.CanonicalBytes()) }

// HashHex returns Hash as lowercase hex.
func (c *Charter) HashHex() string {
	h := c.Hash()
	return hex.EncodeToString(h[:])
}

func sortedSet(s []string) []string {
	out := slices.Clone(s)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out
}
