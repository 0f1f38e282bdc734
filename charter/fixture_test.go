package charter

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"
)

// fixture is a valid, unsigned version-1 charter with the private keys of
// everyone in it. Keys are fresh for every fixture and never written out.
type fixture struct {
	yaml      string
	officials map[string]ed25519.PrivateKey
	hosts     map[string]ed25519.PrivateKey
}

const fixtureOrigin = "ledger.demo-republic.example"

func genKey(t testing.TB) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pub), priv
}

func genCheckpointKey(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey(fixtureOrigin, pub)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{officials: map[string]ed25519.PrivateKey{}, hosts: map[string]ed25519.PrivateKey{}}
	var pairs []string
	for _, id := range []string{"min-interior", "cio", "registrar", "notary", "deputy"} {
		pub, priv := genKey(t)
		f.officials[id] = priv
		pairs = append(pairs, "{key:"+id+"}", pub)
	}
	for _, id := range []string{"host-north", "host-west"} {
		pub, priv := genKey(t)
		f.hosts[id] = priv
		pairs = append(pairs, "{key:"+id+"}", pub)
	}
	for _, id := range []string{"home", "embassy-north", "embassy-west"} {
		tls, _ := genKey(t)
		pairs = append(pairs, "{ckpt:"+id+"}", genCheckpointKey(t), "{tls:"+id+"}", tls)
	}
	for _, id := range []string{"cust-1", "cust-2"} {
		x, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, "{age:"+id+"}", x.Recipient().String())
	}
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	pairs = append(pairs, "{age:cust-3}", pq.Recipient().String())
	f.yaml = strings.NewReplacer(pairs...).Replace(fixtureTemplate)
	return f
}

// charter parses the fixture; it must be valid.
func (f *fixture) charter(t testing.TB) *Charter {
	t.Helper()
	c, err := Parse([]byte(f.yaml))
	if err != nil {
		t.Fatalf("fixture does not parse: %v", err)
	}
	return c
}

// signed returns the fixture signed by the amend quorum and both hosts.
func (f *fixture) signed(t testing.TB) *Charter {
	t.Helper()
	c := f.charter(t)
	f.sign(t, c, nil, KindOfficial, "min-interior", "cio", "registrar")
	f.sign(t, c, nil, KindHost, "host-north", "host-west")
	return c
}

func (f *fixture) sign(t testing.TB, c, prev *Charter, kind string, ids ...string) {
	t.Helper()
	keys := f.officials
	if kind == KindHost {
		keys = f.hosts
	}
	for _, id := range ids {
		if err := Sign(c, prev, kind, id, keys[id]); err != nil {
			t.Fatalf("sign as %s: %v", id, err)
		}
	}
}

const fixtureTemplate = `format: chancery-charter/v1
version: 1
previous: ""
guest:
  id: demo-republic
  name: Demo Republic
  origin: ledger.demo-republic.example
hosts:
  - id: host-north
    name: Northland
    key: {key:host-north}
  - id: host-west
    name: Westland
    key: {key:host-west}
sites:
  - id: home
    host: ""
    role: home
    url: https://127.0.0.1:7001
    jurisdiction: DR
    checkpoint_key: {ckpt:home}
    tls_key: {tls:home}
  - id: embassy-north
    host: host-north
    role: embassy
    url: https://127.0.0.1:7002
    jurisdiction: NL
    checkpoint_key: {ckpt:embassy-north}
    tls_key: {tls:embassy-north}
  - id: embassy-west
    host: host-west
    role: embassy
    url: https://127.0.0.1:7003
    jurisdiction: WL
    checkpoint_key: {ckpt:embassy-west}
    tls_key: {tls:embassy-west}
officials:
  - id: min-interior
    name: Minister of the Interior
    roles: [minister]
    key: {key:min-interior}
  - id: cio
    name: Chief Information Officer
    roles: [cio]
    key: {key:cio}
  - id: registrar
    name: Registrar General
    roles: [registrar]
    key: {key:registrar}
  - id: notary
    name: State Notary
    roles: [notary]
    key: {key:notary}
  - id: deputy
    name: Deputy Minister
    roles: [minister, cio]
    key: {key:deputy}
custodians:
  threshold: 2
  members:
    - id: cust-1
      name: First Custodian
      recipient: {age:cust-1}
    - id: cust-2
      name: Second Custodian
      recipient: {age:cust-2}
    - id: cust-3
      name: Third Custodian
      recipient: {age:cust-3}
registries:
  - name: population
    classification: secret
    sites: [home, embassy-north, embassy-west]
    index: [national_id, last_name]
    sync: quorum
    quorum_sites: 1
  - name: land
    classification: internal
    sites: [home, embassy-north]
    index: [parcel_id]
    sync: async
quorum:
  activate: { threshold: 2, of: [minister, cio, registrar], require: { minister: 1 } }
  failback: { threshold: 2, of: [minister, cio, registrar], require: { minister: 1 } }
  drill: { threshold: 1, of: [cio, registrar] }
  revoke-site: { threshold: 2, of: [minister, cio], require: { minister: 1, cio: 1 } }
  rotate-keys: { threshold: 2, of: [minister, cio] }
  amend: { threshold: 3, of: [minister, cio, registrar], require: { minister: 1 } }
safeguards:
  suspend_notice: 720h
  operator_may: [health, capacity, sizes, suspend]
  retention: 87600h
`
