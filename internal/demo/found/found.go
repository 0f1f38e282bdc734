// Package found founds the Demo Republic: its charter, every key of its
// officials, custodians, hosts and sites sealed in a state directory, and
// the custody package of its root key. `chancery init`, the demo and the
// tests found states with it; nothing in a running site depends on it.
package found

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// InitOptions configure Init.
type InitOptions struct {
	Dir string
	// Protector seals every private key the state generates. In the demo
	// all parties share one passphrase; in a real state each official,
	// custodian and host holds their own key file (or hardware token).
	Protector keyfile.Protector
	// Log, if set, receives one line per step.
	Log func(format string, args ...any)
	// Guest, if set, replaces the Demo Republic's guest id (also used as
	// its name), so that two guests founded from the same template can
	// share an embassy site (tests do). Origin, if set, is the ledger
	// origin; by default every founding gets its own (state.NewOrigin).
	Guest, Origin string
	// Amend, if set, changes the founding charter before it is validated
	// and signed: tests add registries and service sections with it.
	Amend func(*charter.Charter) error
	// AmendKeyed, if set, changes the founding charter once the state
	// keys are derived, with the keyring of the new root: what needs a
	// key derived from the root (the portal's client key) is added here.
	AmendKeyed func(*charter.Charter, *seal.Keyring) error
	// NoLedger leaves the home ledger empty instead of recording the
	// founding in it (FoundingEntries). Test fixtures whose ledger
	// indices predate anchoring set it; chancery init and the demo never.
	NoLedger bool
}

// FoundingEntries is how many entries founding writes to the home
// ledger: the charter (entry 0) and the custody event that anchors the
// custody package's id and root commitment (entry 1).
const FoundingEntries = 2

type demoSite struct{ id, host, role, url, jurisdiction, quota string }

type demoOfficial struct {
	id, name string
	roles    []string
}

// The Demo Republic: a home site and two embassies in two host states, five
// officials, five custodians of whom three unseal, five registries (and the
// two of the identity services, identity.go, and the two of the PostgreSQL
// connector, postgres.go).
var (
	demoHosts = [][2]string{{"northland", "Kingdom of Northland"}, {"southland", "Republic of Southland"}}
	demoSites = []demoSite{
		// Home holds its own data without limit; each host grants 64 GiB.
		{"home", "", charter.RoleHome, "https://127.0.0.1:7001", "DR", ""},
		{"embassy-north", "northland", charter.RoleEmbassy, "https://127.0.0.1:7101", "NL", "64GiB"},
		{"embassy-south", "southland", charter.RoleEmbassy, "https://127.0.0.1:7201", "SL", "64GiB"},
	}
	demoOfficials = []demoOfficial{
		{"min-interior", "Ana Ivanova, Minister of the Interior", []string{"minister"}},
		{"min-justice", "Tomas Berg, Minister of Justice", []string{"minister"}},
		{"cio", "Lena Okafor, State Chief Information Officer", []string{"cio"}},
		{"registrar", "Pavel Horak, Chief Registrar", []string{"registrar"}},
		{"notary", "Mira Santos, State Notary", []string{"notary", "registrar"}},
	}
	demoCustodians = []string{"cust-parliament", "cust-court", "cust-bank", "cust-ombudsman", "cust-archive"}
)

func demoCharter() *charter.Charter {
	c := &charter.Charter{
		Format:     charter.Format,
		Version:    1,
		Guest:      charter.Guest{ID: "demo-republic", Name: "Demo Republic"},
		Custodians: charter.Custodians{Threshold: 3},
		Registries: []charter.Registry{
			{Name: "population", Classification: charter.ClassSecret, Sites: []string{"home", "embassy-north", "embassy-south"}, Index: []string{"national_id", "last_name"}, Sync: charter.SyncQuorum, QuorumSites: 1},
			{Name: "identity-documents", Classification: charter.ClassSecret, Sites: []string{"home", "embassy-north", "embassy-south"}, Index: []string{"document_no", "national_id"}, Sync: charter.SyncAsync},
			{Name: "land", Classification: charter.ClassRestricted, Sites: []string{"home", "embassy-north"}, Index: []string{"parcel_id", "owner_id"}, Sync: charter.SyncAsync},
			{Name: "business", Classification: charter.ClassInternal, Sites: []string{"home", "embassy-north", "embassy-south"}, Index: []string{"registration_no"}, Sync: charter.SyncAsync},
			{Name: "legal-acts", Classification: charter.ClassPublic, Sites: []string{"home", "embassy-south"}, Index: []string{"act_id"}, Sync: charter.SyncAsync},
		},
		Quorum: map[string]charter.Rule{
			charter.ActionActivate:   {Threshold: 2, Of: []string{"minister", "cio"}, Require: map[string]int{"minister": 1}},
			charter.ActionFailback:   {Threshold: 2, Of: []string{"minister", "cio"}, Require: map[string]int{"minister": 1}},
			charter.ActionDrill:      {Threshold: 1, Of: []string{"cio", "registrar"}},
			charter.ActionRevokeSite: {Threshold: 3, Of: []string{"minister", "cio", "registrar"}, Require: map[string]int{"minister": 1}},
			charter.ActionRotateKeys: {Threshold: 2, Of: []string{"cio", "registrar"}},
			charter.ActionAmend:      {Threshold: 3, Of: []string{"minister", "cio", "notary"}, Require: map[string]int{"minister": 2}},
		},
		Safeguards: charter.Safeguards{
			SuspendNotice: "720h",
			OperatorMay:   []string{charter.OperatorHealth, charter.OperatorCapacity, charter.OperatorSizes, charter.OperatorSuspend},
			Retention:     "87600h",
		},
	}
	for _, h := range demoHosts {
		c.Hosts = append(c.Hosts, charter.Host{ID: h[0], Name: h[1]})
	}
	for _, s := range demoSites {
		c.Sites = append(c.Sites, charter.Site{ID: s.id, Host: s.host, Role: s.role, URL: s.url, Jurisdiction: s.jurisdiction, Quota: s.quota})
	}
	for _, o := range demoOfficials {
		c.Officials = append(c.Officials, charter.Official{ID: o.id, Name: o.name, Roles: o.roles})
	}
	addProcedures(c)
	addPostgres(c)
	return c
}

// DemoSigners are the officials who sign the Demo Republic's first charter:
// the amend quorum (two ministers and the notary).
var DemoSigners = []string{"min-interior", "min-justice", "notary"}

// Init creates the Demo Republic in opts.Dir: every key generated from
// crypto/rand and written sealed (mode 0600), the charter built, signed by
// the amend quorum and by each host for its own sites, and written.
func Init(ctx context.Context, opts InitOptions) (*charter.Charter, error) {
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	l := state.Layout{Dir: opts.Dir}
	if _, err := os.Stat(l.Charter()); err == nil {
		return nil, fmt.Errorf("init %s: a charter already exists there", opts.Dir)
	}
	if err := os.MkdirAll(l.Keys(), 0o700); err != nil {
		return nil, fmt.Errorf("init %s: %w", opts.Dir, err)
	}
	c := demoCharter()
	if err := demoNotices(c); err != nil {
		return nil, fmt.Errorf("init: demo notices: %w", err)
	}
	if opts.Guest != "" {
		c.Guest.ID, c.Guest.Name = opts.Guest, opts.Guest
	}
	c.Guest.Origin = opts.Origin
	if c.Guest.Origin == "" {
		c.Guest.Origin = state.NewOrigin(state.DemoOrigin)
	}
	keys := map[string]ed25519.PrivateKey{}
	newKey := func(kind, id string) (ed25519.PublicKey, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := keyfile.WriteEd25519(l.Key(kind, id), priv, opts.Protector); err != nil {
			return nil, err
		}
		keys[kind+"/"+id] = priv
		return pub, nil
	}
	b64 := base64.StdEncoding.EncodeToString

	for i := range c.Hosts {
		pub, err := newKey("host", c.Hosts[i].ID)
		if err != nil {
			return nil, fmt.Errorf("init host %s: %w", c.Hosts[i].ID, err)
		}
		c.Hosts[i].Key = b64(pub)
	}
	for i := range c.Sites {
		s := &c.Sites[i]
		pub, err := newKey("site-checkpoint", s.ID)
		if err != nil {
			return nil, fmt.Errorf("init site %s: %w", s.ID, err)
		}
		s.CheckpointKey = ledger.VerifierKeyString(c.Guest.Origin, 0x01, pub)
		if pub, err = newKey("site-tls", s.ID); err != nil {
			return nil, fmt.Errorf("init site %s: %w", s.ID, err)
		}
		s.TLSKey = b64(pub)
	}
	for i := range c.Officials {
		pub, err := newKey("official", c.Officials[i].ID)
		if err != nil {
			return nil, fmt.Errorf("init official %s: %w", c.Officials[i].ID, err)
		}
		c.Officials[i].Key = b64(pub)
	}
	logf("generated keys for %d hosts, %d sites and %d officials", len(c.Hosts), len(c.Sites), len(c.Officials))

	for i, id := range demoCustodians {
		// Custodians show both recipient types age offers: classic X25519
		// and the hybrid post-quantum one.
		var recipient string
		var identity string
		if i%2 == 0 {
			ident, err := age.GenerateHybridIdentity()
			if err != nil {
				return nil, err
			}
			recipient, identity = ident.Recipient().String(), ident.String()
		} else {
			ident, err := age.GenerateX25519Identity()
			if err != nil {
				return nil, err
			}
			recipient, identity = ident.Recipient().String(), ident.String()
		}
		if err := keyfile.WriteAgeIdentity(l.Key("custodian", id), identity, opts.Protector); err != nil {
			return nil, fmt.Errorf("init custodian %s: %w", id, err)
		}
		c.Custodians.Members = append(c.Custodians.Members, charter.Custodian{ID: id, Name: "Custodian " + id[len("cust-"):], Recipient: recipient})
	}
	logf("generated age identities for %d custodians (threshold %d)", len(c.Custodians.Members), c.Custodians.Threshold)

	root, err := seal.NewRootKey()
	if err != nil {
		return nil, fmt.Errorf("init: root key: %w", err)
	}
	defer root.Wipe()
	// The identity section registers the citizen portal's client key,
	// which is derived from the root (state.PortalJWKS).
	if err := addIdentity(c, opts.Dir, root); err != nil {
		return nil, fmt.Errorf("init: identity services: %w", err)
	}
	if opts.Amend != nil {
		if err := opts.Amend(c); err != nil {
			return nil, fmt.Errorf("init: amend the founding charter: %w", err)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("init: demo charter: %w", err)
	}

	// The root key: sealed for the home, and split among the custodians so
	// that a site can rebuild it when home is gone.
	if err := seal.WriteRootKeyFile(l.RootKey(), root, opts.Protector.Passphrase, opts.Protector.WorkFactor); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	var cs []seal.Custodian
	for _, m := range c.Custodians.Members {
		cs = append(cs, seal.Custodian{ID: m.ID, Recipient: m.Recipient})
	}
	pkg, err := seal.Split(c.Guest.ID, root, c.Custodians.Threshold, cs)
	if err != nil {
		return nil, fmt.Errorf("init: custody: %w", err)
	}
	if err := pkg.WriteFile(l.Custody()); err != nil {
		return nil, fmt.Errorf("init: custody: %w", err)
	}
	// The charter pins the package, so that no other split of a root can
	// be passed off as this state's: custodians check it before sealing a
	// share to a site, and an auditor checks the ledger's custody event
	// against it.
	pid, rc := pkg.PackageID(), pkg.RootCommitment()
	c.Custodians.Package, c.Custodians.Commitment = hex.EncodeToString(pid[:]), hex.EncodeToString(rc[:])
	logf("root key sealed for home and split %d of %d among the custodians; custody package %x… pinned in the charter", c.Custodians.Threshold, len(cs), pid[:8])
	if err := addStateKeys(c, root); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if opts.AmendKeyed != nil {
		kr := seal.NewKeyring(c.Guest.ID, root)
		err := opts.AmendKeyed(c, kr)
		kr.Wipe()
		if err != nil {
			return nil, fmt.Errorf("init: amend the founding charter: %w", err)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("init: demo charter: %w", err)
		}
	}
	for _, id := range DemoSigners {
		if err := charter.Sign(c, nil, charter.KindOfficial, id, keys["official/"+id]); err != nil {
			return nil, fmt.Errorf("init: sign charter as %s: %w", id, err)
		}
	}
	for _, h := range c.Hosts {
		if err := charter.Sign(c, nil, charter.KindHost, h.ID, keys["host/"+h.ID]); err != nil {
			return nil, fmt.Errorf("init: sign charter as host %s: %w", h.ID, err)
		}
	}
	if err := charter.VerifySignatures(c, nil); err != nil {
		return nil, fmt.Errorf("init: charter signatures: %w", err)
	}
	data, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(l.Charter(), data, 0o644); err != nil {
		return nil, fmt.Errorf("init: write charter: %w", err)
	}
	logf("charter v%d signed by %v and hosts %s, %s; hash %s", c.Version, DemoSigners, c.Hosts[0].ID, c.Hosts[1].ID, c.HashHex())
	if opts.NoLedger {
		return c, nil
	}
	if err := anchor(ctx, l, c, pkg, opts.Protector); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	logf("home ledger founded: the charter as entry 0, the custody event (package %x…, root commitment %x…) as entry 1", pid[:8], rc[:8])
	return c, nil
}

// anchor records the founding in the home site's ledger, epoch 1: the
// charter's canonical bytes, then the custody package's key event (its id
// and root commitment). Every site that mirrors the ledger then holds the
// commitment the charter pins, and a package swapped later shows as a
// custody event the charter does not name.
func anchor(ctx context.Context, l state.Layout, c *charter.Charter, pkg *seal.CustodyPackage, p keyfile.Protector) error {
	home, ok := c.Home()
	if !ok {
		return fmt.Errorf("charter of %s names no home site", c.Guest.ID)
	}
	log, err := state.OpenLedger(ctx, l, c, home.ID, p, ledger.Options{})
	if err != nil {
		return fmt.Errorf("home ledger: %w", err)
	}
	ev, err := pkg.CustodyEvent([32]byte{}).MarshalBinary()
	if err == nil {
		now := time.Now()
		_, err = log.AppendBatch(ctx, []ledger.Entry{
			{Type: ledger.TypeCharter, Epoch: 1, Time: now, Payload: c.CanonicalBytes()},
			{Type: ledger.TypeKeyEvent, Epoch: 1, Time: now, Payload: ev},
		})
	}
	if cerr := log.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("home ledger %s: found: %w", l.Ledger(home.ID), err)
	}
	return nil
}

// StateKeyPurposes are the state keys a founding charter publishes: the
// extract-signing key (Ed25519, for COSE) and the OpenID Connect ID-token
// key (P-256, ES256, which every relying-party library verifies).
func StateKeyPurposes() []struct{ Purpose, Alg string } {
	return []struct{ Purpose, Alg string }{
		{"extract", seal.StateAlgEdDSA},
		{"oidc", seal.StateAlgES256},
	}
}

// addStateKeys derives the state keys from root and publishes their public
// halves in c, so that anything signed in the state's name verifies with
// the charter alone, whichever site signed it.
func addStateKeys(c *charter.Charter, root *seal.RootKey) error {
	kr := seal.NewKeyring(c.Guest.ID, root)
	defer kr.Wipe()
	for _, p := range StateKeyPurposes() {
		s, err := kr.StateSigner(p.Purpose, p.Alg, 0)
		if err != nil {
			return err
		}
		k, err := charter.NewStateKey(p.Purpose, p.Alg, 0, s.Public())
		if err != nil {
			return err
		}
		c.StateKeys = append(c.StateKeys, k)
	}
	return c.Validate()
}
