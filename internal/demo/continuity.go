package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
	"github.com/chancery-gov/chancery/siteapi"
	"github.com/chancery-gov/chancery/store"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// proc is a `chancery serve` child process.
type proc struct {
	name, config, log, url string
	cmd                    *exec.Cmd
	done                   chan struct{} // closed once the process has exited
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// sites are the three sites of the story, each its own process.
type sites struct {
	bin, dir, pass string
	urls           map[string]string
	procs          map[string]*proc
	mu             sync.Mutex
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *sites) start(ctx context.Context, name, cfg string) error {
	p := &proc{name: name, config: filepath.Join(s.dir, name+".yaml"), log: filepath.Join(s.dir, name+".log"), url: s.urls[siteOf(name)]}
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(s.bin, "serve", "--config", p.config)
	p.cmd.Env = append(os.Environ(), keyfile.EnvPassphrase+"="+s.pass)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	tail, _ := os.ReadFile(p.log)
	return fmt.Errorf("%s did not come up; its log ends:\n%s", name, lastLines(string(tail), 8))
}

func siteOf(name string) string { return strings.TrimSuffix(name, "-standby") }

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// kill sends SIGKILL to a site's process group: the disaster.
func (s *sites) kill(name string) {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p != nil && p.cmd.Process != nil {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
		}
	}
}

func (s *sites) stopAll() {
	s.mu.Lock()
	ps := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		ps = append(ps, p)
	}
	s.procs = map[string]*proc{}
	s.mu.Unlock()
	for _, p := range ps {
		if p.cmd.Process != nil {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	for _, p := range ps {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}

func peersYAML(urls map[string]string) string {
	var b strings.Builder
	b.WriteString("peers:\n")
	for _, id := range []string{"home", "embassy-north", "embassy-south"} {
		fmt.Fprintf(&b, "  %s: %s\n", id, urls[id])
	}
	return b.String()
}

// continuityStory is the part of the demo that needs separate processes:
// replication to two embassies, the loss of home, activation by order,
// unseal by custodians, service from the embassy, the home rebuilt from
// it, and failback.
func continuityStory(ctx context.Context, opts Options, dir string, pass []byte, c *charter.Charter, probeID string, rep *Report, say func(string, ...any)) (err error) {
	layout := state.Layout{Dir: dir}
	s := &sites{bin: opts.Binary, dir: dir, pass: string(pass), urls: map[string]string{}, procs: map[string]*proc{}}
	ports := map[string]int{}
	for _, id := range []string{"home", "embassy-north", "embassy-south"} {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[id] = p
		s.urls[id] = fmt.Sprintf("http://127.0.0.1:%d", p)
	}
	if opts.Keep {
		// The sites outlive the story: the caller stops them
		// (Report.Stop), once the person has rehearsed on them.
		defer func() {
			if err != nil {
				s.stopAll()
				return
			}
			rep.SiteURLs, rep.Stop = s.urls, s.stopAll
		}()
	} else {
		defer s.stopAll()
	}
	pgd, err := startPostgres(ctx, opts, dir, c, rep, say)
	if err != nil {
		return err
	}
	defer pgd.close()
	embassy := func(id string) string {
		return fmt.Sprintf("site: %s\nlisten: 127.0.0.1:%d\ninsecure_loopback: true\ndata_dir: %s\nguests:\n  - charter: %s\n    checkpoint_key: %s\n    custody: %s\n%s%s",
			id, ports[id], filepath.Join(dir, "sites", id), layout.Charter(), layout.Key("site-checkpoint", id), layout.Custody(), pgd.guestConfig(id), peersYAML(s.urls))
	}
	homeCfg := fmt.Sprintf("state_dir: %s\nsite: home\nlisten: 127.0.0.1:%d\ninsecure_loopback: true\n%s%s", dir, ports["home"], pgd.homeConfig(), peersYAML(s.urls))

	say("== Two embassies open in two host states, each its own process: embassy-north (Northland), embassy-south (Southland)")
	for _, id := range []string{"embassy-north", "embassy-south"} {
		if err := s.start(ctx, id, embassy(id)); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := s.start(ctx, "home", homeCfg); err != nil {
		return err
	}
	status := func() (*siteapi.ReplicationStatus, error) { return siteapi.FetchStatus(ctx, s.urls["home"], nil) }
	var st *siteapi.ReplicationStatus
	for {
		if st, err = status(); err != nil {
			return err
		}
		caught := len(st.Sites) == 2
		for _, l := range st.Sites {
			caught = caught && l.Entries == 0 && l.Size == st.Size
		}
		if caught {
			break
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("demo: replication did not catch up: %+v", st.Sites)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rep.CatchUp = time.Since(start)
	say("   the home ships its %d entries and their deeds; both sites check every batch and sign receipts: caught up in %v",
		st.Size, rep.CatchUp.Round(time.Millisecond))
	for _, l := range st.Sites {
		say("   %-14s receipt for %d entries (cosigned %s), %.1f MB shipped", l.Site, l.Size, l.ReceiptTime.Format(time.TimeOnly), float64(l.BytesSent)/1e6)
	}
	if err := pgd.follow(ctx, s.urls["home"]); err != nil {
		return err
	}

	officials := func(id string) (siteapi.Signer, error) {
		key, err := keyfile.ReadEd25519(layout.Key("official", id), keyfile.Protector{Passphrase: pass})
		return siteapi.Signer{Guest: c.Guest.ID, Official: id, Key: key}, err
	}
	registrar, err := officials("registrar")
	if err != nil {
		return err
	}
	clientAt := func(siteID, base string) *siteapi.Client {
		sg := registrar
		sg.Site = siteID
		return &siteapi.Client{BaseURL: base, Signer: sg}
	}

	say("== Officials keep working at home over its API while the sites follow")
	homeAPI := clientAt("home", s.urls["home"])
	lagStart := time.Now()
	var written []string
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("DR-DEMO-%04d", i)
		rec := json.RawMessage(fmt.Sprintf(`{"national_id":%q,"first_name":"Nova","last_name":"Demo%d","address":{"city":"Capital"}}`, id, i))
		if _, err := homeAPI.Put(ctx, "population", id, rec); err != nil {
			return fmt.Errorf("demo: write at home: %w", err)
		}
		written = append(written, id)
	}
	writeTime := time.Since(lagStart)
	// legal-acts is placed at the home and embassy-south only: a home
	// rebuilt from embassy-north gets this act as a withheld stub, and
	// must fetch it from south before it writes again.
	const actID = "LA-2026-DEMO1"
	actRec, err := homeAPI.Put(ctx, "legal-acts", actID, json.RawMessage(`{"act_id":"LA-2026-DEMO1","title":"Continuity of State Functions Act","kind":"act","date":"2026-11-26","gazette":"Official Gazette of the Demo Republic","text":"Article 1. The registers of the Republic are kept also at its embassies."}`))
	if err != nil {
		return fmt.Errorf("demo: legal act at home: %w", err)
	}
	if st, err = status(); err != nil {
		return err
	}
	say("   50 population records written in %v, each acknowledged only once an embassy had cosigned it (quorum registry)", writeTime.Round(time.Millisecond))
	say("   legal act %s published at ledger entry %d (legal-acts is placed at home and embassy-south only)", actID, actRec.Index)
	for _, l := range st.Sites {
		rep.RPOEntries = max(rep.RPOEntries, l.Entries)
		rep.RPOSeconds = max(rep.RPOSeconds, l.Seconds)
		say("   %-14s RPO now: %d entries, %.3f s behind home", l.Site, l.Entries, l.Seconds)
	}

	idStory, err := identityAtHome(ctx, dir, pass, c.Guest.ID, s.urls["home"], homeAPI, say)
	if err != nil {
		return err
	}

	// The disaster strikes once both sites hold every acknowledged write,
	// so that the story loses nothing. (Were north behind south, north
	// would refuse its activation, naming south: site/fence.go.)
	settle := time.Now()
	for {
		if st, err = status(); err != nil {
			return err
		}
		caught := true
		for _, l := range st.Sites {
			caught = caught && l.Entries == 0
		}
		if caught {
			break
		}
		if time.Since(settle) > 2*time.Minute {
			return fmt.Errorf("demo: the sites did not catch up before the disaster: %+v", st.Sites)
		}
		time.Sleep(20 * time.Millisecond)
	}
	say("   both sites hold every acknowledged write %v later", time.Since(settle).Round(time.Millisecond))
	say("== Disaster: the home is destroyed — its process killed, its data deleted")
	s.kill("home")
	if err := os.RemoveAll(filepath.Join(dir, "sites", "home")); err != nil {
		return err
	}
	say("   sites/home is gone; the embassies hold the sealed state and the ledger up to their last receipts")
	if err := pgd.whileLost(ctx); err != nil {
		return err
	}

	say("== Two officials sign an activation order for embassy-north, offline")
	ep := continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite, Epoch: 2,
		Reason: "home infrastructure lost", NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(24 * time.Hour)}
	signed, err := signOrder(c, ep, layout, pass, "min-interior", "cio")
	if err != nil {
		return err
	}
	north := &siteapi.ContinuityClient{BaseURL: s.urls["embassy-north"], Guest: c.Guest.ID}
	ordered := time.Now()
	or, err := north.Submit(ctx, signed)
	if err != nil {
		return fmt.Errorf("demo: activation: %w", err)
	}
	say("   order %s accepted by embassy-north as ledger entry %d: epoch %d, writer %s; embassy-south was fenced against the old home first, and a returning home learns the epoch and is fenced",
		or.Order[:12], or.Index, or.Status.Epoch, or.Status.Writer)

	say("== Three of five custodians unseal embassy-north: each re-seals their share to the site's one-time key")
	cio, err := officials("cio")
	if err != nil {
		return err
	}
	cio.Site = "embassy-north"
	north.Signer = &cio
	sess, err := north.OpenUnseal(ctx)
	if err != nil {
		return err
	}
	pkg, err := seal.ReadCustodyPackageFile(layout.Custody())
	if err != nil {
		return err
	}
	// The custodians seal only to a recipient the site signed under the
	// charter.
	rst, _, err := continuity.VerifyRecipient(c, pkg, sess.RecipientStatement, time.Now())
	if err != nil {
		return fmt.Errorf("demo: the session's recipient: %w", err)
	}
	var shares [][]byte
	for _, cust := range []string{"cust-parliament", "cust-court", "cust-bank"} {
		sh, err := reseal(pkg, layout, pass, cust, rst.Recipient)
		if err != nil {
			return err
		}
		shares = append(shares, sh)
	}
	// The guest's escrow holds every embassy's wrapped outer key; the
	// officials hand them over with the shares. They open only under the
	// root the shares rebuild.
	for _, id := range []string{"embassy-north", "embassy-south"} {
		w, err := os.ReadFile(filepath.Join(guest.EscrowDir(layout), guest.OuterKeyFile(id)))
		if err != nil {
			return fmt.Errorf("demo: escrow: %w", err)
		}
		if err := north.SubmitSiteKey(ctx, rst, id, w); err != nil {
			return fmt.Errorf("demo: hand over %s's outer key: %w", id, err)
		}
	}
	var unsealedAt time.Time
	for i, sh := range shares {
		r, err := north.SubmitShare(ctx, sess.Session, sh)
		if err != nil {
			return fmt.Errorf("demo: share %d: %w", i+1, err)
		}
		if r.Unsealed {
			unsealedAt = time.Now()
			say("   share %d of %d in: the root key is rebuilt in memory only, the registries' index rebuilt from the ledger", r.Have, r.Need)
		}
	}
	if unsealedAt.IsZero() {
		return errors.New("demo: the site did not unseal at the threshold")
	}

	say("== embassy-north serves the state's operational core")
	northAPI := clientAt("embassy-north", s.urls["embassy-north"]+"/guests/"+c.Guest.ID)
	got, err := northAPI.Get(ctx, "population", probeID, registry.AsOf{})
	if err != nil {
		return fmt.Errorf("demo: lookup at embassy-north: %w", err)
	}
	firstRead := time.Now()
	cs, err := north.Status(ctx)
	if err != nil {
		return err
	}
	rep.RTO = time.Duration(cs.RTOSeconds * float64(time.Second))
	var person struct {
		First string `json:"first_name"`
		Last  string `json:"last_name"`
	}
	json.Unmarshal(got.Data, &person)
	say("   lookup of national id %s: %s %s, version %d — the read is an access entry in the ledger", probeID, person.First, person.Last, got.Version)
	say("   RTO: %v from the order and the threshold of shares to the first served read (%v from the order's submission, custodians included)",
		rep.RTO.Round(time.Millisecond), firstRead.Sub(ordered).Round(time.Millisecond))
	newID, err := registerBirth(ctx, c, northAPI.BaseURL, layout, pass, probeID, say)
	if err != nil {
		return err
	}
	if err := pgd.atEmbassy(ctx, s.urls["embassy-north"]); err != nil {
		return err
	}
	// A certified extract of the new record, issued in the state's name at
	// the embassy and checked offline with the charter alone, as a border
	// guard would check the parents' copy.
	issued := time.Now()
	ex, err := northAPI.Extract(ctx, "population", newID, "national_id", "first_name", "last_name")
	if err != nil {
		return fmt.Errorf("demo: certified extract at embassy-north: %w", err)
	}
	took := time.Since(issued)
	ev, err := offline.NewVerifier(c)
	if err != nil {
		return err
	}
	exRep, _, err := extract.VerifyFile(ev, ex.PDF)
	if err != nil {
		return fmt.Errorf("demo: the extract issued at embassy-north does not verify offline: %w", err)
	}
	files := filepath.Join(dir, "birth-certificate")
	for _, f := range []struct {
		ext  string
		data []byte
	}{{".pdf", ex.PDF}, {".qr.png", ex.QRPNG}} {
		if err := os.WriteFile(files+f.ext, f.data, 0o644); err != nil {
			return err
		}
	}
	rep.ExtractTime = took
	say("   the parents get a certified extract in %v: COSE_Sign1 by the state's key, its act at ledger entry %d cosigned by %s;",
		took.Round(time.Millisecond), exRep.Act, strings.Join(exRep.Cosigners, ", "))
	say("   %s.pdf and .qr.png verify offline with the charter alone (%d checks): chancery extract verify %s.pdf --charter %s",
		files, len(exRep.Checks), files, layout.Charter())
	if err := payPensions(ctx, c, northAPI.BaseURL, layout, pass, dir, say); err != nil {
		return err
	}
	if !opts.Keep {
		say("   (the demo's directory is removed at the end: run it with --keep to keep the files)")
	}

	if err := announceAbroad(ctx, c, layout, pass, northAPI, s.urls["embassy-south"], say); err != nil {
		return err
	}
	if err := idStory.atEmbassy(ctx, layout, pass, c.Guest.ID, s.urls["embassy-north"], say); err != nil {
		return err
	}

	say("== The home is rebuilt: a fresh home starts as a sealed mirror and catches up from embassy-north")
	rebuilt := time.Now()
	if err := s.start(ctx, "home-standby", homeCfg+"standby: true\n"); err != nil {
		return err
	}
	home := &siteapi.ContinuityClient{BaseURL: s.urls["home"], Guest: c.Guest.ID}
	var hs *siteapi.ContinuityStatus
	for {
		if hs, err = home.Status(ctx); err != nil {
			return err
		}
		ns, err := north.Status(ctx)
		if err != nil {
			return err
		}
		if hs.Size >= ns.Size && hs.Epoch == 2 {
			break
		}
		if time.Since(rebuilt) > 5*time.Minute {
			return fmt.Errorf("demo: the home did not catch up (%d of %d entries)", hs.Size, ns.Size)
		}
		time.Sleep(100 * time.Millisecond)
	}
	say("   home holds all %d entries again, checked against embassy-north's signatures, in %v", hs.Size, time.Since(rebuilt).Round(time.Millisecond))

	if err := pgd.beforeFailback(ctx); err != nil {
		return err
	}
	say("== Failback: the ministers order the home back; embassy-north appends the order, stops writing and reseals")
	fb := continuity.Order{Action: charter.ActionFailback, Site: "home", Epoch: 3, Reason: "home rebuilt",
		NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(24 * time.Hour)}
	signed, err = signOrder(c, fb, layout, pass, "min-justice", "cio")
	if err != nil {
		return err
	}
	if _, err := north.Submit(ctx, signed); err != nil {
		return fmt.Errorf("demo: failback: %w", err)
	}
	fbStart := time.Now()
	for {
		if hs, err = home.Status(ctx); err != nil {
			return err
		}
		if hs.Writer == "home" && hs.Mode == siteapi.ModeActive && hs.Unsealed {
			break
		}
		if time.Since(fbStart) > 2*time.Minute {
			return fmt.Errorf("demo: the home did not take over: %+v", hs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		ns, err := north.Status(ctx)
		if err != nil {
			return err
		}
		if ns.Mode == siteapi.ModeStandby && !ns.Unsealed {
			break
		}
		if time.Since(fbStart) > 3*time.Minute {
			return fmt.Errorf("demo: embassy-north did not reseal: %+v", ns)
		}
		time.Sleep(50 * time.Millisecond)
	}
	say("   home writes epoch %d again after %v; embassy-north is a sealed mirror once more", hs.Epoch, time.Since(fbStart).Round(time.Millisecond))
	homeAPI = clientAt("home", s.urls["home"]+"/guests/"+c.Guest.ID)
	back, err := homeAPI.Get(ctx, "population", newID, registry.AsOf{})
	if err != nil {
		return fmt.Errorf("demo: the embassy's record at home: %w", err)
	}
	say("   the birth registered abroad is at home: %s, version %d, written in epoch %d — no record lost", newID, back.Version, back.Epoch)
	for _, id := range written {
		if _, err := homeAPI.Get(ctx, "population", id, registry.AsOf{}); err != nil {
			return fmt.Errorf("demo: record %s written before the disaster is missing after failback: %w", id, err)
		}
	}
	say("   all %d records acknowledged at home before the disaster are there too", len(written))
	act, err := homeAPI.Get(ctx, "legal-acts", actID, registry.AsOf{})
	if err != nil {
		return fmt.Errorf("demo: legal act %s (placed at home and embassy-south only) after failback: %w", actID, err)
	}
	say("   legal act %s (v%d), which embassy-north may not hold, is at home too: fetched from embassy-south and checked against the ledger before the home wrote again", actID, act.Version)
	rep.Epochs = hs.Epoch
	rep.FinalSize = hs.Size
	rep.ActiveSite = hs.Writer
	if err := pgd.afterFailback(ctx, s, dir, pass, homeCfg); err != nil {
		return err
	}
	if err := revokeNorth(ctx, c, layout, pass, s, rep, say); err != nil {
		return err
	}
	active := s.urls[rep.ActiveSite]
	say("== The pages (docs/ui.md), served by the sites while they run; %s writes:", rep.ActiveSite)
	say("   citizen portal        %s  (the issuer's name: the active site serves it, over HTTPS in a deployment)", found.DemoPortalURL)
	say("   officials' desk       %s/ui/desk", active)
	say("   continuity dashboard  %s/ui/dashboard  (every site serves one)", active)
	if !opts.Keep {
		say("   the sites stop with the story; `chancery demo --keep` leaves them running for you to click through")
	}
	return nil
}

// revokeNorth revokes embassy-north — it held the state's keys while it was
// active — and shows its copy of the deeds unreadable with every key the
// guest still has.
func revokeNorth(ctx context.Context, c *charter.Charter, layout state.Layout, pass []byte, s *sites, rep *Report, say func(string, ...any)) error {
	root, err := seal.ReadRootKeyFile(layout.RootKey(), pass)
	if err != nil {
		return err
	}
	keys := seal.NewKeyring(c.Guest.ID, root)
	root.Wipe()
	defer keys.Wipe()
	refs, err := deedRefs(ctx, layout, keys, c.Guest.ID)
	if err != nil {
		return err
	}
	be, err := storefs.New(filepath.Join(layout.Dir, "sites", "embassy-north", "guests", c.Guest.ID, "blobs"))
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Prefixed(be, registry.BlobPrefix("land")), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	inner := keys.Registry("land").Blobs()
	readable := func(sl store.Sealer) int {
		n := 0
		for _, ref := range refs {
			if st.Get(ctx, sl, ref, io.Discard) == nil {
				n++
			}
		}
		return n
	}
	escrow := filepath.Join(guest.EscrowDir(layout), guest.OuterKeyFile("embassy-north"))
	w, err := os.ReadFile(escrow)
	if err != nil {
		return err
	}
	nk, err := keys.UnwrapSiteKey("embassy-north", w)
	if err != nil {
		return err
	}
	before := readable(registry.OuterSealer(inner, nk, c.Guest.ID, "embassy-north"))
	nk.Wipe()

	say("== Revocation: embassy-north held the state's keys while active; three officials revoke it")
	o := continuity.Order{Action: charter.ActionRevokeSite, Site: "embassy-north", Epoch: rep.Epochs, Reason: "was active: retire its copy",
		NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(24 * time.Hour)}
	signed, err := signOrder(c, o, layout, pass, "min-interior", "cio", "registrar")
	if err != nil {
		return err
	}
	home := &siteapi.ContinuityClient{BaseURL: s.urls["home"], Guest: c.Guest.ID}
	or, err := home.Submit(ctx, signed)
	if err != nil {
		return fmt.Errorf("demo: revocation: %w", err)
	}
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(escrow); os.IsNotExist(err) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// With every key the guest still holds: the root, every wrapped outer
	// key left in its key store and escrow, and the registry's own keys.
	after := readable(inner)
	var tried int
	for _, dir := range []string{layout.Keys(), guest.EscrowDir(layout)} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".wrapped") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			tried++
			if k, err := keys.UnwrapSiteKey("embassy-north", b); err == nil {
				after += readable(registry.OuterSealer(inner, k, c.Guest.ID, "embassy-north"))
				k.Wipe()
			}
		}
	}
	rep.ShreddedBefore, rep.ShreddedAfter = before, after
	say("   order %s appended at home as entry %d: north's outer key destroyed in the home's key store and the escrow, nothing more shipped to it", or.Order[:12], or.Index)
	say("   north's copy of the deeds: %d of %d readable before with its key; %d after, with the root key and the %d wrapped keys left", before, len(refs), after, tried)
	if before != len(refs) || after != 0 {
		return fmt.Errorf("demo: shredding not shown: %d of %d readable before, %d after", before, len(refs), after)
	}
	return nil
}

// deedRefs are the attachments of the land register, from the home's
// ledger: their references are sealed in the record bodies, so it opens
// them with the keys.
func deedRefs(ctx context.Context, layout state.Layout, keys *seal.Keyring, guest string) ([]store.Ref, error) {
	dir := layout.Ledger("home")
	f := ledger.DirFetcher(dir)
	b, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return nil, err
	}
	cp, err := ledger.ParseSignedCheckpoint(b)
	if err != nil {
		return nil, err
	}
	var refs []store.Ref
	err = ledger.Scan(ctx, f, 0, cp.Size, func(_ uint64, raw []byte) error {
		if raw[1] != byte(ledger.TypeRecord) {
			return nil
		}
		e, _ := ledger.DecodeEntry(raw)
		re, err := registry.UnmarshalRecordEntry(e.Payload)
		if err != nil || re.Registry != "land" || re.Kind != registry.KindPut {
			return err
		}
		rec, _, err := registry.OpenEntry(keys, guest, raw)
		if err != nil {
			return err
		}
		for _, a := range rec.Attachments {
			refs = append(refs, a.Ref)
		}
		return nil
	})
	return refs, err
}

// signOrder makes an order and has the officials sign it with their keys.
func signOrder(c *charter.Charter, tmpl continuity.Order, layout state.Layout, pass []byte, signers ...string) ([]byte, error) {
	o, err := continuity.NewOrder(c, tmpl)
	if err != nil {
		return nil, fmt.Errorf("demo: order: %w", err)
	}
	so := &continuity.SignedOrder{Order: *o}
	for _, id := range signers {
		key, err := keyfile.ReadEd25519(layout.Key("official", id), keyfile.Protector{Passphrase: pass})
		if err != nil {
			return nil, err
		}
		if err := continuity.Sign(so, id, key); err != nil {
			return nil, err
		}
	}
	return so.Marshal()
}

// reseal is what a custodian does on their own machine: open their share
// with their identity and seal it to the session's one-time recipient.
func reseal(pkg *seal.CustodyPackage, layout state.Layout, pass []byte, custodian, recipient string) ([]byte, error) {
	id, err := keyfile.ReadAgeIdentity(layout.Key("custodian", custodian), keyfile.Protector{Passphrase: pass})
	if err != nil {
		return nil, err
	}
	sh, err := pkg.OpenShare(custodian, id)
	if err != nil {
		return nil, err
	}
	defer sh.Wipe()
	rcpt, err := age.ParseHybridRecipient(recipient)
	if err != nil {
		return nil, err
	}
	return sh.SealTo(rcpt)
}
