package replica_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// The fixture is a Demo Republic on disk: the home writes through the real
// registry (sealed records, fs blob stores, a signed ledger), and each
// embassy is a real mirror with a real Receiver served over loopback HTTP
// behind a fault-injecting TCP proxy. Nothing is mocked.

const (
	testPass = "replica test passphrase"
	home     = "home"
	north    = "embassy-north"
	south    = "embassy-south"
)

var embassies = []string{north, south}

// founded is a Demo Republic founded once per test binary and copied into
// each test's directory.
var founded = statetest.New(testPass)

func protector() keyfile.Protector { return founded.Protector() }

// newState returns a fresh copy of a founded Demo Republic.
func newState(t testing.TB) string { return founded.Copy(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	founded.Remove()
	os.Exit(code)
}

func copyDir(src, dst string) error { return statetest.CopyDir(src, dst) }

type fixtureOptions struct {
	// targets are the embassies the home ships to (default both); the
	// others are set up (mirror, receiver, server, proxy) but not fed.
	targets []string
	// noReplicator leaves out the replicator: quorum writes then need no
	// site, and tests build batches by hand.
	noReplicator bool
	// shipper tunes the replicator's shippers.
	shipper replica.ShipperOptions
}

type fixture struct {
	t      testing.TB
	dir    string
	layout state.Layout
	c      *charter.Charter
	guest  string
	client *http.Client

	home      *ledger.Log
	keys      *seal.Keyring
	homeBlobs store.Backend
	regs      *registry.Registries
	repl      *replica.Replicator
	stopRepl  func()

	sites map[string]*testSite
}

// testSite is one embassy: its mirror, receiver, HTTP server and the
// proxy the home reaches it through.
type testSite struct {
	f        *fixture
	id       string
	ledger   string // mirror directory
	blobDir  string
	cosigner *ledger.Cosigner

	mu    sync.Mutex // guards the fields below across a restart
	log   *ledger.Log
	blobs store.Backend
	recv  *replica.Receiver
	mux   *http.ServeMux
	srv   *httptest.Server

	addr   string // the server's listening address, kept across restarts
	proxy  *testnet.Proxy
	remote *replica.Remote // through the proxy
}

// readCharter reads the state's charter into f.
func (f *fixture) readCharter() {
	f.t.Helper()
	data, err := os.ReadFile(f.layout.Charter())
	if err != nil {
		f.t.Fatal(err)
	}
	if f.c, err = charter.Parse(data); err != nil {
		f.t.Fatal(err)
	}
	f.guest = f.c.Guest.ID
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, dir: newState(t), sites: map[string]*testSite{}}
	f.layout = state.Layout{Dir: f.dir}
	f.readCharter()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	f.client = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)

	var err error
	f.home, err = state.OpenLedger(ctx, f.layout, f.c, home, protector(), ledger.Options{CheckpointInterval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.home.Close(); err != nil {
			t.Errorf("close home ledger: %v", err)
		}
	})
	root, err := seal.ReadRootKeyFile(f.layout.RootKey(), []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	f.keys = seal.NewKeyring(f.c.Guest.ID, root)
	t.Cleanup(f.keys.Wipe)
	if f.homeBlobs, err = storefs.New(f.layout.Blobs(home)); err != nil {
		t.Fatal(err)
	}
	ro := registry.Options{Charter: f.c, Site: home, Log: f.home, Keys: f.keys, Blobs: f.homeBlobs}
	if !o.noReplicator {
		ro.Replicated = func(ctx context.Context, reg string, index uint64) error {
			return f.repl.Replicated(ctx, reg, index)
		}
	}
	if f.regs, err = registry.Open(ctx, ro); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.regs.Close(); err != nil {
			t.Errorf("close registries: %v", err)
		}
	})

	for _, id := range embassies {
		f.sites[id] = f.startSite(id)
	}
	if o.noReplicator {
		return f
	}
	targets := o.targets
	if targets == nil {
		targets = embassies
	}
	ro2 := replica.ReplicatorOptions{
		Charter: f.c, Self: home, Log: f.home,
		Source:  replica.LocalSource{Log: f.home, Blobs: f.regs.Blobs, Backend: f.homeBlobs},
		Shipper: o.shipper,
	}
	if ro2.Shipper.MinBackoff == 0 {
		ro2.Shipper.MinBackoff = 10 * time.Millisecond
	}
	if ro2.Shipper.MaxBackoff == 0 {
		ro2.Shipper.MaxBackoff = 200 * time.Millisecond
	}
	for _, id := range targets {
		ro2.Targets = append(ro2.Targets, replica.Target{Site: id, Sink: f.sites[id].remote})
	}
	if f.repl, err = replica.NewReplicator(ro2); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.repl.Run(rctx)
	}()
	var once sync.Once
	f.stopRepl = func() { once.Do(func() { cancel(); <-done }) }
	// Registered last so that it runs first: no shipper talks to a site
	// being torn down.
	t.Cleanup(f.stopRepl)
	return f
}

// with returns the fixture for a subtest: its helpers then fail, and
// clean up after, the subtest.
func (f *fixture) with(t testing.TB) *fixture {
	g := *f
	g.t = t
	return &g
}

// siteKey reads a site's checkpoint key.
func (f *fixture) siteKey(site string) ed25519.PrivateKey {
	f.t.Helper()
	k, err := keyfile.ReadEd25519(f.layout.Key("site-checkpoint", site), protector())
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

// openMirror opens a mirror ledger in dir.
func (f *fixture) openMirror(dir string) *ledger.Log {
	f.t.Helper()
	l, err := ledger.Open(context.Background(), dir, ledger.Options{Origin: f.c.Guest.Origin, Mirror: true, CheckpointInterval: time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// receiverAt builds a receiver for site over a mirror and a blob backend.
func (f *fixture) receiverAt(site string, log *ledger.Log, blobs store.Backend, quota int64) *replica.Receiver {
	f.t.Helper()
	cs, err := replica.NewReceiptCosigner(f.c, site, f.siteKey(site))
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := replica.NewReceiver(replica.ReceiverOptions{Charter: f.c, Site: site, Log: log, Blobs: blobs, Cosigner: cs, Quota: quota})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// freshReceiver is a receiver for site on a new, empty mirror and blob
// directory, outside the fixture's sites: for batches built by hand.
func (f *fixture) freshReceiver(site string, quota int64) (*replica.Receiver, string) {
	f.t.Helper()
	return f.optReceiver(site, func(o *replica.ReceiverOptions) { o.Quota = quota })
}

// serve mounts a receiver on a new mux, as a site does.
func (f *fixture) serve(r *replica.Receiver) *http.ServeMux {
	mux := http.NewServeMux()
	r.Mount(mux, "/replica/v1/guests/"+f.guest, nil)
	return mux
}

func (f *fixture) startSite(id string) *testSite {
	t := f.t
	t.Helper()
	s := &testSite{f: f, id: id, ledger: f.layout.Ledger(id), blobDir: f.layout.Blobs(id)}
	s.open()
	s.srv = httptest.NewServer(s.mux)
	s.addr = s.srv.Listener.Addr().String()
	p, err := testnet.NewProxy(context.Background(), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.proxy = p
	s.remote = &replica.Remote{Base: "http://" + p.Addr(), Guest: f.guest, Client: f.client}
	t.Cleanup(func() {
		p.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.shut()
	})
	return s
}

// open opens the site's mirror, blob backend and receiver from its
// directories.
func (s *testSite) open() {
	f := s.f
	var err error
	s.log = f.openMirror(s.ledger)
	if s.blobs, err = storefs.New(s.blobDir); err != nil {
		f.t.Fatal(err)
	}
	s.recv = f.receiverAt(s.id, s.log, s.blobs, 0)
	s.mux = f.serve(s.recv)
}

// shut stops the server and closes receiver and mirror; s.mu is held.
func (s *testSite) shut() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
	if s.recv != nil {
		if err := s.recv.Close(); err != nil {
			s.f.t.Errorf("site %s: close receiver: %v", s.id, err)
		}
		s.recv = nil
	}
	if s.log != nil {
		if err := s.log.Close(); err != nil {
			s.f.t.Errorf("site %s: close mirror: %v", s.id, err)
		}
		s.log = nil
	}
}

// restart closes the site's server, receiver and mirror, reopens them on
// the same directories and serves again on the same address, so the proxy
// in front of it (and so the home) sees one site that went away and came
// back.
func (s *testSite) restart(down time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shut()
	time.Sleep(down)
	s.open()
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.f.t.Fatalf("site %s: listen again on %s: %v", s.id, s.addr, err)
	}
	srv := httptest.NewUnstartedServer(s.mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	s.srv = srv
}

func (s *testSite) receiver() *replica.Receiver {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recv
}

func (s *testSite) mirror() *ledger.Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log
}

// record builds a valid record body for a registry: every index field
// carries the value given.
func (f *fixture) record(reg, value string) json.RawMessage {
	r, ok := f.c.Registry(reg)
	if !ok {
		f.t.Fatalf("no registry %s", reg)
	}
	m := map[string]string{"note": "replicated " + value}
	for _, field := range r.Index {
		m[field] = value
	}
	b, err := json.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// put writes a record, with an attachment of att bytes if att is not nil.
func (f *fixture) put(ctx context.Context, reg, id string, att []byte) (*registry.Record, error) {
	var atts []registry.Attachment
	if att != nil {
		ref, err := f.regs.PutBlob(ctx, reg, bytes.NewReader(att))
		if err != nil {
			return nil, err
		}
		atts = []registry.Attachment{{Name: id + ".pdf", Size: ref.Size, Ref: ref}}
	}
	return f.regs.Put(ctx, reg, id, f.record(reg, id), atts)
}

func (f *fixture) mustPut(reg, id string, att []byte) *registry.Record {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := f.put(ctx, reg, id, att)
	if err != nil {
		f.t.Fatalf("put %s/%s: %v", reg, id, err)
	}
	return r
}

// randomBytes is incompressible content, so attachments make real packs.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// published waits until the home has published a checkpoint covering every
// entry it holds, and returns it.
func (f *fixture) published() ([]byte, ledger.Checkpoint) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	signed, cp, err := f.home.WaitPublished(ctx, f.home.Size())
	if err != nil {
		f.t.Fatal(err)
	}
	return signed, cp
}

// waitSites waits until each site's receipt covers size entries.
func (f *fixture) waitSites(size uint64, d time.Duration, sites ...string) {
	f.t.Helper()
	if size == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, s := range sites {
		if err := f.repl.Tracker().WaitSite(ctx, s, size-1); err != nil {
			f.t.Fatalf("site %s does not hold %d entries: %v; lags %+v", s, size, err, f.repl.Tracker().Lags())
		}
	}
}

// homeVerifiers verify the home's checkpoints.
func (f *fixture) homeVerifiers() note.Verifiers {
	f.t.Helper()
	h, _ := f.c.Home()
	v, err := ledger.ParseVerifierKey(h.CheckpointKey)
	if err != nil {
		f.t.Fatal(err)
	}
	return note.VerifierList(v)
}

// verify checks a ledger directory as an auditor would, with the home's
// key.
func (f *fixture) verify(dir string) *ledger.VerifyReport {
	f.t.Helper()
	rep, err := ledger.Verify(context.Background(), ledger.DirFetcher(dir), ledger.VerifyOptions{Origin: f.c.Guest.Origin, Verifiers: f.homeVerifiers()})
	if err != nil {
		f.t.Fatalf("verify %s: %v", dir, err)
	}
	return rep
}

// homeEntries reads the home's entries [0, size).
func (f *fixture) homeEntries(size uint64) [][]byte {
	f.t.Helper()
	var out [][]byte
	err := ledger.Scan(context.Background(), ledger.DirFetcher(f.home.Dir()), 0, size, func(_ uint64, e []byte) error {
		out = append(out, append([]byte(nil), e...))
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// recordOf decodes a record entry, or returns nil for other entries.
func recordOf(t testing.TB, e []byte) *registry.RecordEntry {
	t.Helper()
	d, err := ledger.DecodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != ledger.TypeRecord {
		return nil
	}
	rec, err := registry.UnmarshalRecordEntry(d.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// batch builds the batch the writer would send site for entries [from,
// to) under the signed checkpoint: entries the site may not hold withheld
// unless raw, and the consistency proof when to ends short of it.
func (f *fixture) batch(site string, from, to uint64, signed []byte, raw bool) *replica.Batch {
	f.t.Helper()
	text, err := ledger.SplitNote(signed)
	if err != nil {
		f.t.Fatal(err)
	}
	cp, err := ledger.ParseCheckpoint(text)
	if err != nil {
		f.t.Fatal(err)
	}
	place := replica.Placement{Charter: f.c, Site: site}
	fetch := ledger.DirFetcher(f.home.Dir())
	b := &replica.Batch{First: from, Checkpoint: signed}
	// Scan the tree the checkpoint signs: its tiles are the ones written.
	done := errors.New("done")
	err = ledger.Scan(context.Background(), fetch, from, cp.Size, func(idx uint64, e []byte) error {
		if idx >= to {
			return done
		}
		e = append([]byte(nil), e...)
		_, ok, _, err := place.Entry(e)
		if err != nil {
			return err
		}
		if !ok && !raw {
			if e, err = ledger.Withhold(e); err != nil {
				return err
			}
		}
		b.Entries = append(b.Entries, e)
		return nil
	})
	if err != nil && !errors.Is(err, done) {
		f.t.Fatal(err)
	}
	if to < cp.Size {
		if b.Proof, err = ledger.NewProver(fetch, 0).Consistency(context.Background(), to, cp.Size); err != nil {
			f.t.Fatal(err)
		}
	}
	return b
}

// packsOf lists the pack names a registry's store at the home holds.
func (f *fixture) packsOf(reg string) []string {
	f.t.Helper()
	st, err := f.regs.Blobs(reg)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, p := range st.Packs() {
		out = append(out, store.PackName(p.ID))
	}
	return out
}

// within polls cond until it holds or d passes.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastError is the tracker's last error for a site.
func lastError(tr *replica.Tracker, site string) string {
	for _, l := range tr.Lags() {
		if l.Site == site {
			return l.LastError
		}
	}
	return ""
}

// errorsAsGap unwraps a *GapError.
func errorsAsGap(err error) (*replica.GapError, bool) {
	var g *replica.GapError
	ok := errors.As(err, &g)
	return g, ok
}

// registries lists every registry name of the charter.
func (f *fixture) registries() []string {
	var out []string
	for _, r := range f.c.Registries {
		out = append(out, r.Name)
	}
	return out
}

func placed(c *charter.Charter, reg, site string) bool {
	return replica.Placement{Charter: c, Site: site}.Registry(reg)
}
