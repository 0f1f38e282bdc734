package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/services/extract/offline"
	"github.com/chancery-gov/chancery/services/notice"
	"github.com/chancery-gov/chancery/siteapi"
)

// maxNoticeFile bounds a notice file read by the CLI.
const maxNoticeFile = 1 << 20

// newNoticeCmd wires `chancery notice`: drafting a public notice, officials
// signing it offline one after another as they sign orders, publishing it
// at the site where the guest is active, and verifying a notice or a feed
// with the charter alone.
func newNoticeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notice",
		Short: "Public notices: draft, sign offline, publish, verify (Atom and JSON feeds at every site)",
		Long: `Public notices (emergency information, "the government is operating from
abroad", new legal acts) are signed by the officials the charter's
services.notices.classes require for the notice's class, recorded in the
ledger by the site where the guest is active, and served by every site of
the guest, standby included, as Atom (…/notices.atom) and JSON Feed
(…/notices.json). Each entry carries its signatures and its inclusion proof
against a cosigned checkpoint, so anyone verifies it with the charter alone
(docs/notices.md).

  1. One official drafts it:         chancery notice draft ... --out n.json
  2. Each signer, offline, in turn:  chancery notice sign n.json --official ID --key KEY
  3. Anyone checks the quorum:       chancery notice verify n.json --charter charter.yaml
  4. An official publishes it:       chancery notice publish n.json --site SITE --official ID
  5. Anyone verifies the feed:       chancery notice verify https://SITE/guests/GUEST/notices.atom --charter charter.yaml`,
	}
	cmd.AddCommand(newNoticeDraftCmd(), newNoticeSignCmd(), newNoticeVerifyCmd(), newNoticePublishCmd())
	return cmd
}

type noticeDraftOptions struct {
	charterFile, id, class, title, body, bodyFile, lang, site, out string
	epoch                                                          uint64
	now                                                            time.Time // tests
}

func newNoticeDraftCmd() *cobra.Command {
	var o noticeDraftOptions
	cmd := &cobra.Command{
		Use:   "draft --class CLASS --title TEXT (--body TEXT|--body-file FILE) --site SITE --epoch N --out FILE",
		Short: "Draft an unsigned public notice (step 1)",
		Long: `Draft a public notice and write it, unsigned, to --out (never overwriting) for
the officials to sign with "chancery notice sign". Everything in it is
signed: the guest, the id (default: a random one), the class (which selects
the quorum), the title, the body, the language, the time of issue (now,
in whole seconds), and the site that will record it in the epoch it writes
(--site and --epoch: the home in epoch 1, an activated embassy after an
activation). A site refuses a notice signed for another site or epoch.`,
		Example: `  chancery notice draft --charter charter.yaml --class continuity \
      --title "The government is operating from abroad" \
      --body "Services continue from embassy-north." --site embassy-north --epoch 2 --out abroad.notice`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNoticeDraft(cmd.OutOrStdout(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.charterFile, "charter", "", "the guest's charter (default: the context's)")
	tieContext(f, "charter", "charter")
	f.StringVar(&o.id, "id", "", "the notice's id: 1-64 letters, digits, '.', '_' or '-' (default: random)")
	f.StringVar(&o.class, "class", "", "the notice's class, one the charter's services.notices.classes names (required)")
	f.StringVar(&o.title, "title", "", "the title (required)")
	f.StringVar(&o.body, "body", "", "the text")
	f.StringVar(&o.bodyFile, "body-file", "", "a file holding the text (instead of --body)")
	f.StringVar(&o.lang, "lang", "", "the language tag of the text (e.g. en)")
	f.StringVar(&o.site, "site", "", "the site that will record it: where the guest is active (required)")
	f.Uint64Var(&o.epoch, "epoch", 0, "the epoch that site writes (required)")
	f.StringVar(&o.out, "out", "", "notice file to create (required)")
	for _, n := range []string{"class", "title", "site", "epoch", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func runNoticeDraft(w io.Writer, o noticeDraftOptions) error {
	if o.charterFile == "" {
		return errors.New("notice draft: --charter is required (or a context that names one)")
	}
	c, err := charter.ReadVerified(o.charterFile)
	if err != nil {
		return fmt.Errorf("notice draft: %w", err)
	}
	v, err := notice.NewVerifier(c)
	if err != nil {
		return fmt.Errorf("notice draft: %w", err)
	}
	rule, ok := v.Config().Classes[o.class]
	if !ok {
		return fmt.Errorf("notice draft: --class %q is not a notice class of %s (classes: %s)", o.class, c.Guest.ID, strings.Join(noticeClasses(v.Config()), ", "))
	}
	if _, ok := c.Site(o.site); !ok {
		return fmt.Errorf("notice draft: --site %q is not a site of %s", o.site, c.Guest.ID)
	}
	body, err := textOf(o.body, o.bodyFile)
	if err != nil {
		return fmt.Errorf("notice draft: %w", err)
	}
	if o.id == "" {
		var r [6]byte
		if _, err := rand.Read(r[:]); err != nil {
			return err
		}
		o.id = "n-" + hex.EncodeToString(r[:])
	}
	now := o.now
	if now.IsZero() {
		now = time.Now()
	}
	s := notice.Signed{Notice: notice.Notice{Guest: c.Guest.ID, ID: o.id, Class: o.class, Title: o.title, Body: body, Lang: o.lang,
		IssuedAt: now.UTC().Truncate(time.Second), Epoch: o.epoch, Site: o.site}, Signatures: []notice.Signature{}}
	b, err := s.Marshal()
	if err != nil {
		return fmt.Errorf("notice draft: %w", err)
	}
	if err := fsutil.WriteNew(o.out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("notice draft: %w", err)
	}
	_, err = fmt.Fprintf(w, "drafted notice %s (class %s) in %s\nit needs: %s\nnext: chancery notice sign %s --official ID --key KEY\n",
		o.id, o.class, o.out, describeRule(rule), o.out)
	return err
}

// textOf is the text --body gives, or the file --body-file names.
func textOf(body, bodyFile string) (string, error) {
	if bodyFile == "" {
		return body, nil
	}
	if body != "" {
		return "", errors.New("give --body or --body-file, not both")
	}
	b, err := fsutil.Read(bodyFile, maxNoticeFile)
	if err != nil {
		return "", fmt.Errorf("--body-file: %w", err)
	}
	return string(b), nil
}

func noticeClasses(cfg notice.Config) []string {
	var out []string
	for k := range cfg.Classes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// describeRule says a quorum rule in words.
func describeRule(r charter.Rule) string {
	s := fmt.Sprintf("%d signatures of officials with roles %s", r.Threshold, strings.Join(r.Of, ", "))
	var req []string
	for role, n := range r.Require {
		req = append(req, fmt.Sprintf("%d %s", n, role))
	}
	slices.Sort(req)
	if len(req) > 0 {
		s += ", among them at least " + strings.Join(req, " and ")
	}
	return s
}

// readNoticeFile reads a notice file: the signed notice's canonical JSON
// and a final newline, which is all that is forgiven.
func readNoticeFile(path string) (*notice.Signed, error) {
	b, err := fsutil.Read(path, maxNoticeFile)
	if err != nil {
		return nil, fmt.Errorf("read notice %s: %w", path, err)
	}
	s, err := notice.Parse(bytes.TrimSuffix(b, []byte("\n")))
	if err != nil {
		return nil, fmt.Errorf("read notice %s: %w", path, err)
	}
	return s, nil
}

type noticeSignOptions struct {
	file, official, keyFile, charterFile, passFile string
}

func newNoticeSignCmd() *cobra.Command {
	var o noticeSignOptions
	cmd := &cobra.Command{
		Use:   "sign NOTICEFILE --official ID --key KEYFILE [--charter FILE]",
		Short: "Add your signature to a notice (step 2)",
		Long: `Sign the notice in NOTICEFILE as official --official with the Ed25519 key in
the age-encrypted key file --key, and rewrite the file with the signature
added. Read the notice printed first: you sign every field of it. Sign
offline, then pass the file to the next official. With --charter, the key
must be the one the charter gives the official, and sign prints whether
the class's quorum is met.`,
		Example: `  chancery notice sign abroad.notice --official min-interior --key min-interior.key --charter charter.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return runNoticeSign(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	offlineSignerFlags(f, &o.official, &o.keyFile, &o.passFile)
	f.StringVar(&o.charterFile, "charter", "", "charter file to check the key and quorum against (default: the context's)")
	tieContext(f, "charter", "charter")
	return cmd
}

func runNoticeSign(w io.Writer, o noticeSignOptions) error {
	if o.official == "" || o.keyFile == "" {
		return fmt.Errorf("notice sign %s: --official and --key are required", o.file)
	}
	s, err := readNoticeFile(o.file)
	if err != nil {
		return fmt.Errorf("notice sign: %w", err)
	}
	for _, sig := range s.Signatures {
		if sig.Official == o.official {
			return fmt.Errorf("notice sign %s: official %s has already signed notice %s", o.file, o.official, s.Notice.ID)
		}
	}
	var c *charter.Charter
	if o.charterFile != "" {
		if c, err = charter.ReadVerified(o.charterFile); err != nil {
			return fmt.Errorf("notice sign %s: --charter: %w", o.file, err)
		}
		if s.Notice.Guest != c.Guest.ID {
			return fmt.Errorf("notice sign %s: notice of guest %s, the charter is %s's", o.file, s.Notice.Guest, c.Guest.ID)
		}
		if _, ok := c.Official(o.official); !ok {
			return fmt.Errorf("notice sign %s: --official: %s is not an official of %s", o.file, o.official, c.Guest.ID)
		}
	}
	key, err := openOfficialKey(c, o.official, o.keyFile, o.passFile)
	if err != nil {
		return fmt.Errorf("notice sign %s: %w", o.file, err)
	}
	defer clear(key)
	sig, err := notice.Sign(&s.Notice, o.official, key)
	if err != nil {
		return fmt.Errorf("notice sign %s: %w", o.file, err)
	}
	s.Signatures = append(s.Signatures, sig)
	b, err := s.Marshal()
	if err != nil {
		return err
	}
	if err := replaceFile(o.file, append(b, '\n')); err != nil {
		return fmt.Errorf("notice sign %s: %w", o.file, err)
	}
	fmt.Fprintf(w, "notice %s (%s, class %s, for %s in epoch %d): %q\nsigned as %s\n", s.Notice.ID, s.Notice.Guest, s.Notice.Class, s.Notice.Site, s.Notice.Epoch, s.Notice.Title, o.official)
	if c == nil {
		_, err = fmt.Fprintln(w, "not checked against a charter (give --charter): the quorum shows at notice verify")
		return err
	}
	return printNoticeQuorum(w, c, s)
}

// openOfficialKey opens an official's sealed signing key, its passphrase
// from passFile or the environment; with a charter, the key must be the
// one the charter gives the official, so that a mistake shows before the
// signature travels. The caller clears the key.
func openOfficialKey(c *charter.Charter, official, keyFile, passFile string) (ed25519.PrivateKey, error) {
	pass, err := readPassphrase(passFile, os.Stdin, os.Stderr)
	if err != nil {
		return nil, err
	}
	key, err := keyfile.ReadEd25519(keyFile, keyfile.Protector{Passphrase: pass})
	clear(pass)
	if err != nil {
		return nil, err
	}
	if c != nil {
		off, _ := c.Official(official)
		pub, err := off.PublicKey()
		if err != nil || !pub.Equal(key.Public()) {
			clear(key)
			return nil, fmt.Errorf("--key %s is not the key charter %s v%d gives official %s", keyFile, c.Guest.ID, c.Version, official)
		}
	}
	return key, nil
}

// printNoticeQuorum says whether the notice's signatures meet its class's
// quorum, or what is missing.
func printNoticeQuorum(w io.Writer, c *charter.Charter, s *notice.Signed) error {
	v, err := notice.NewVerifier(c)
	if err != nil {
		return err
	}
	ids, err := notice.Quorum(c, v.Config(), s)
	if err != nil {
		_, werr := fmt.Fprintf(w, "quorum NOT met: %v\n", err)
		return werr
	}
	_, err = fmt.Fprintf(w, "quorum met: signed by %s\n", strings.Join(ids, ", "))
	return err
}

type noticeVerifyOptions struct {
	what, charterFile string
}

func newNoticeVerifyCmd() *cobra.Command {
	var o noticeVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify NOTICEFILE|FEED|URL --charter charter.yaml",
		Short: "Verify a notice's quorum, or every notice of an Atom or JSON feed, with the charter alone",
		Long: `Verify a notice file's signatures against its class's quorum (steps 2-3), or
every notice a feed carries: its quorum, its entry's inclusion in the
checkpoint it names, and that checkpoint's signature by a site's log key
and the cosignatures of the sites the charter requires. A feed is a file
(Atom or JSON Feed, as a site serves at …/notices.atom and …/notices.json)
or its http(s) URL, fetched without authentication (notices are public).
Exit status is non-zero when any notice fails; the message names it.`,
		Example: `  chancery notice verify abroad.notice --charter charter.yaml
  chancery notice verify notices.atom --charter charter.yaml
  chancery notice verify http://127.0.0.1:7201/guests/demo-republic/notices.json --charter charter.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.what = args[0]
			return runNoticeVerify(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.charterFile, "charter", "", "the guest's charter (default: the context's)")
	tieContext(cmd.Flags(), "charter", "charter")
	return cmd
}

func runNoticeVerify(ctx context.Context, w io.Writer, o noticeVerifyOptions) error {
	if o.charterFile == "" {
		return errors.New("notice verify: --charter is required (or a context that names one)")
	}
	c, err := charter.ReadVerified(o.charterFile)
	if err != nil {
		return fmt.Errorf("notice verify: %w", err)
	}
	v, err := notice.NewVerifier(c)
	if err != nil {
		return fmt.Errorf("notice verify: %w", err)
	}
	var b []byte
	if strings.HasPrefix(o.what, "http://") || strings.HasPrefix(o.what, "https://") {
		hc, err := siteClient(o.what, "", "", false)
		if err != nil {
			return err
		}
		if b, err = siteapi.FetchPublic(ctx, hc, o.what, "", nil); err != nil {
			return fmt.Errorf("notice verify: %w", err)
		}
	} else if b, err = fsutil.Read(o.what, 64<<20); err != nil {
		return fmt.Errorf("notice verify: %w", err)
	}
	ps, kind, err := parseNoticeInput(b)
	if err != nil {
		return fmt.Errorf("notice verify %s: %w", o.what, err)
	}
	if ps == nil { // a notice file: its quorum only
		s, err := notice.Parse(bytes.TrimSuffix(b, []byte("\n")))
		if err != nil {
			return fmt.Errorf("notice verify %s: %w", o.what, err)
		}
		if err := printNoticeQuorum(w, c, s); err != nil {
			return err
		}
		if _, err := notice.Quorum(c, v.Config(), s); err != nil {
			return fmt.Errorf("notice verify %s: %w", o.what, err)
		}
		return nil
	}
	fmt.Fprintf(w, "%s with %d notices; charter %s v%d, signatures verified\n", kind, len(ps), c.Guest.ID, c.Version)
	for i, p := range ps {
		got, err := v.Verify(p)
		if err != nil {
			return fmt.Errorf("notice verify %s: notice %d: %w", o.what, i, err)
		}
		n := got.Signed.Notice
		fmt.Fprintf(w, "ok  %s %q (class %s, issued %s by %s): signed by %s; entry %d in checkpoint %d written by %s, cosigned by %s\n",
			n.ID, n.Title, n.Class, n.IssuedAt.Format(time.RFC3339), n.Site, strings.Join(got.Signers, ", "), p.Index, p.TreeSize, got.Cosigned.Writer, strings.Join(got.Cosigned.Cosigners, ", "))
	}
	_, err = fmt.Fprintln(w, "VALID")
	return err
}

// parseNoticeInput tells an Atom feed, a JSON Feed and a notice file
// apart: the proven notices of a feed, or nil for a notice file.
func parseNoticeInput(b []byte) ([]*notice.Proven, string, error) {
	t := bytes.TrimSpace(b)
	switch {
	case bytes.HasPrefix(t, []byte("<")):
		ps, err := notice.ParseAtomProofs(t)
		return ps, "Atom feed", err
	case bytes.Contains(t, []byte(`"https://jsonfeed.org/version/1.1"`)):
		ps, err := notice.ParseJSONProofs(t)
		return ps, "JSON Feed", err
	}
	return nil, "notice", nil
}

func newNoticePublishCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:   "publish NOTICEFILE --site SITE --official ID",
		Short: "Publish a signed notice at the site where the guest is active (step 4)",
		Long: `Publish sends the signed notice to the officials' API of the site where the
guest is active, which checks the quorum of its class against the charter,
that it was signed for that site and the epoch it writes, and records it in
the ledger. A notice without its quorum is refused, naming what is missing.
Every site then serves it in its feeds once a checkpoint covering it is
cosigned.`,
		Example: `  chancery notice publish abroad.notice --site embassy-north --official cio --charter charter.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := readNoticeFile(args[0])
			if err != nil {
				return err
			}
			b, err := s.Marshal()
			if err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				rc, err := t.client().PublishNotice(ctx, b)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "published notice %s at ledger index %d\nfeeds: %s/guests/%s/notices.atom and notices.json at every site\n", rc.ID, rc.Index, t.url, t.guest)
				return err
			})
		},
	}
	f.register(cmd, "official")
	return cmd
}

// newMessageCmd wires `chancery message`: an official sends a citizen a
// message, sealed, to their inbox.
func newMessageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "message",
		Short: "Messages to citizens, sealed, read in their inbox after sign-in",
	}
	var (
		f                             siteFlags
		subject, body, bodyFile, lang string
	)
	send := &cobra.Command{
		Use:   "send PERSON --subject TEXT (--body TEXT|--body-file FILE) --site SITE --official ID",
		Short: "Send a message to a citizen, by their person id",
		Long: `Send writes a message to the citizen PERSON (their record id in the
population register) at the site where the guest is active. It is stored
sealed under the messages registry's key, the citizen appearing only as a
blinded index value; if the citizen registered an age X25519 recipient,
the body is also encrypted to it. The delivery is an access entry; the
citizen reads the message in their inbox (GET /inbox on the state's
issuer) after signing in, and each reading is an access entry too
(docs/notices.md).`,
		Example: `  chancery message send DR-0001 --subject "Your passport" --body "It is ready at embassy-north." --site embassy-north --official registrar`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := textOf(body, bodyFile)
			if err != nil {
				return fmt.Errorf("message send: %w", err)
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				rc, err := t.client().SendMessage(ctx, siteapi.MessageRequest{Person: args[0], Subject: subject, Body: body, Lang: lang})
				if err != nil {
					return err
				}
				sealed := "sealed under the registry key"
				if rc.SealedToCitizen {
					sealed += " and encrypted to the citizen's age recipient"
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "sent message %s (version %d, ledger index %d), %s\n", rc.ID, rc.Version, rc.Index, sealed)
				return err
			})
		},
	}
	f.register(send, "official")
	send.Flags().StringVar(&subject, "subject", "", "the subject (required)")
	send.Flags().StringVar(&body, "body", "", "the text")
	send.Flags().StringVar(&bodyFile, "body-file", "", "a file holding the text (instead of --body)")
	send.Flags().StringVar(&lang, "lang", "", "the language tag of the text")
	_ = send.MarkFlagRequired("subject")
	cmd.AddCommand(send)
	return cmd
}

// checkOnline asks a site whether a later version supersedes the extract
// whose claims are cl: where is a site id of the charter (its address and
// pinned TLS key from there) or the guest's public URL at a site.
func checkOnline(ctx context.Context, w io.Writer, c *charter.Charter, where string, cl *offline.Claims) error {
	base, hc, err := onlineTarget(c, where)
	if err != nil {
		return err
	}
	b, err := siteapi.FetchPublic(ctx, hc, base, "/extract-status", siteapi.ExtractStatusQuery(cl.Registry, cl.RecordIndex, cl.Version))
	if err != nil {
		return fmt.Errorf("online check at %s: %w", base, err)
	}
	var st guest.Supersession
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("online check at %s: %w", base, err)
	}
	if st.Registry != cl.Registry || st.RecordIndex != cl.RecordIndex || st.Version != cl.Version {
		return fmt.Errorf("online check at %s: answered for %s entry %d version %d, asked %s entry %d version %d", base, st.Registry, st.RecordIndex, st.Version, cl.Registry, cl.RecordIndex, cl.Version)
	}
	switch {
	case st.Deleted:
		fmt.Fprintf(w, "online (site %s, as of checkpoint %d): SUPERSEDED: the record was deleted (version %d, ledger index %d)\n", st.Site, st.AsOf, st.Latest, st.LatestIndex)
	case st.Superseded:
		fmt.Fprintf(w, "online (site %s, as of checkpoint %d): SUPERSEDED by version %d (ledger index %d)\n", st.Site, st.AsOf, st.Latest, st.LatestIndex)
	default:
		_, err := fmt.Fprintf(w, "online (site %s, as of checkpoint %d): not superseded: version %d is the latest\n", st.Site, st.AsOf, st.Version)
		return err
	}
	return fmt.Errorf("extract %s is superseded: version %d of %s/%s is not the latest", cl.ID, cl.Version, cl.Registry, cl.Record)
}

// onlineTarget resolves --online: a site id of the charter, reached at
// its address with the TLS key the charter pins, or a URL.
func onlineTarget(c *charter.Charter, where string) (string, *http.Client, error) {
	base := strings.TrimSuffix(where, "/")
	var hc *http.Client
	var err error
	if s, ok := c.Site(where); ok {
		base = strings.TrimSuffix(s.URL, "/")
		if strings.HasPrefix(base, "https://") && s.TLSKey != "" {
			hc, err = audit.PinnedClient(c, s.ID)
		} else {
			hc, err = siteClient(base, "", "", false)
		}
	} else if strings.HasPrefix(base, "http://") || strings.HasPrefix(base, "https://") {
		hc, err = siteClient(base, "", "", false)
	} else {
		return "", nil, fmt.Errorf("--online %q: neither a site of %s's charter nor an http(s) URL", where, c.Guest.ID)
	}
	if err != nil {
		return "", nil, err
	}
	if !strings.Contains(base, "/guests/") {
		base += "/guests/" + c.Guest.ID
	}
	return base, hc, nil
}
