package pintls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
)

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// keysOf pins each key to a peer name.
func keysOf(pins map[string]ed25519.PublicKey) PeerKeys {
	return func(pub ed25519.PublicKey) (string, bool) {
		for name, k := range pins {
			if k.Equal(pub) {
				return name, true
			}
		}
		return "", false
	}
}

// testServer is an httptest TLS server whose handler reports who called
// it, and which counts calls and collects the server's error log, where
// refused handshakes show up.
type testServer struct {
	*httptest.Server
	calls atomic.Int32
	conns atomic.Int32
	logs  chan string
}

type chanWriter chan string

func (c chanWriter) Write(p []byte) (int, error) {
	select {
	case c <- string(p):
	default: // a test that ignores the log must not block the server
	}
	return len(p), nil
}

func startServer(t *testing.T, cfg *tls.Config, keys PeerKeys) *testServer {
	t.Helper()
	s := &testServer{logs: make(chan string, 16)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if p, ok := PeerFromRequest(r, keys); ok {
			io.WriteString(w, "peer "+p)
			return
		}
		io.WriteString(w, "anonymous")
	}))
	s.TLS = cfg
	s.Config.ErrorLog = log.New(chanWriter(s.logs), "", 0)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// wantLog waits for a server log line containing every want.
func (s *testServer) wantLog(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	var seen []string
	for {
		select {
		case line := <-s.logs:
			seen = append(seen, line)
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return
			}
		case <-deadline:
			t.Fatalf("server never logged %q; logged %q", want, seen)
		}
	}
}

func get(t *testing.T, cfg *tls.Config, url string) (string, error) {
	t.Helper()
	tr := Transport(cfg)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func serverConfig(t *testing.T, key ed25519.PrivateKey, keys PeerKeys) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(key, "embassy-north.example", keys)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientConfig(t *testing.T, key ed25519.PrivateKey, server ed25519.PublicKey) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(key, server)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestCertificate(t *testing.T) {
	pub, priv := newKey(t)
	before := time.Now()
	cert, err := Certificate(priv, "embassy-north.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 1 {
		t.Fatalf("%d certificates in chain, want 1", len(cert.Certificate))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !k.Equal(pub) {
		t.Errorf("certificate key is %T %v, want the Ed25519 key", leaf.PublicKey, leaf.PublicKey)
	}
	if got, err := selfSignedKey([]*x509.Certificate{leaf}); err != nil || !got.Equal(pub) {
		t.Errorf("not a self-signed certificate of the key: %v", err)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "embassy-north.example" {
		t.Errorf("DNS names %q", leaf.DNSNames)
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(ip); err != nil {
			t.Errorf("loopback %s: %v", ip, err)
		}
	}
	if leaf.NotBefore.After(before.Add(-59*time.Minute)) || leaf.NotBefore.Before(before.Add(-61*time.Minute)) {
		t.Errorf("NotBefore %v, want about an hour before %v", leaf.NotBefore, before)
	}
	if y := leaf.NotAfter.Year() - before.Year(); y != 10 {
		t.Errorf("NotAfter %v is %d years on, want 10", leaf.NotAfter, y)
	}
	if leaf.IsCA {
		t.Error("certificate is a CA")
	}
	again, err := Certificate(priv, "embassy-north.example")
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}
	if leaf.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v is not positive", leaf.SerialNumber)
	}

	ipCert, err := Certificate(priv, "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if err := ipCert.Leaf.VerifyHostname("192.0.2.7"); err != nil || len(ipCert.Leaf.DNSNames) != 0 {
		t.Errorf("IP name: %v, DNS names %q", err, ipCert.Leaf.DNSNames)
	}
}

func TestCertificateRejectsBadKeys(t *testing.T) {
	_, priv := newKey(t)
	_, other := newKey(t)
	mixed := append(bytes.Clone(priv[:32]), other[32:]...)
	for name, key := range map[string]ed25519.PrivateKey{"nil": nil, "short": priv[:32], "mismatched halves": mixed} {
		if _, err := Certificate(key, "x.example"); err == nil {
			t.Errorf("%s key: Certificate succeeded", name)
		}
	}
	if _, err := Certificate(priv, ""); err == nil {
		t.Error("empty name: Certificate succeeded")
	}
	if _, err := ServerConfig(priv, "x.example", nil); err == nil {
		t.Error("ServerConfig with nil clientKeys succeeded")
	}
	if _, err := ClientConfig(priv, ed25519.PublicKey(priv[:16])); err == nil {
		t.Error("ClientConfig with a 16-byte server key succeeded")
	}
}

func TestPinnedServerAccepted(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	s := startServer(t, serverConfig(t, serverPriv, keysOf(nil)), keysOf(nil))
	got, err := get(t, clientConfig(t, nil, serverPub), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got != "anonymous" {
		t.Errorf("handler said %q", got)
	}
}

func TestOtherServerKeyRefused(t *testing.T) {
	_, serverPriv := newKey(t)
	otherPub, _ := newKey(t)
	s := startServer(t, serverConfig(t, serverPriv, keysOf(nil)), keysOf(nil))
	_, err := get(t, clientConfig(t, nil, otherPub), s.URL)
	if err == nil || !strings.Contains(err.Error(), "pinned key is "+base64.StdEncoding.EncodeToString(otherPub)) {
		t.Fatalf("connected to a server with another key: %v", err)
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("handler ran %d times", n)
	}
}

func TestPinnedClientIsPeer(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	clientPub, clientPriv := newKey(t)
	otherPub, _ := newKey(t)
	keys := keysOf(map[string]ed25519.PublicKey{"embassy-south": clientPub, "home": otherPub})
	s := startServer(t, serverConfig(t, serverPriv, keys), keys)
	got, err := get(t, clientConfig(t, clientPriv, serverPub), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got != "peer embassy-south" {
		t.Errorf("handler said %q, want peer embassy-south", got)
	}
}

func TestUnknownClientRefused(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	pinnedPub, _ := newKey(t)
	_, strangerPriv := newKey(t)
	keys := keysOf(map[string]ed25519.PublicKey{"embassy-south": pinnedPub})
	s := startServer(t, serverConfig(t, serverPriv, keys), keys)
	if got, err := get(t, clientConfig(t, strangerPriv, serverPub), s.URL); err == nil {
		t.Fatalf("a client with an unpinned key got %q", got)
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("handler ran %d times", n)
	}
	s.wantLog(t, "handshake error", "not pinned for any site")
}

func TestAnonymousClientNotPeer(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	clientPub, _ := newKey(t)
	keys := keysOf(map[string]ed25519.PublicKey{"embassy-south": clientPub})
	s := startServer(t, serverConfig(t, serverPriv, keys), keys)
	got, err := get(t, clientConfig(t, nil, serverPub), s.URL)
	if err != nil {
		t.Fatalf("a client without a certificate was refused: %v", err)
	}
	if got != "anonymous" {
		t.Errorf("handler said %q, want anonymous", got)
	}
	if _, ok := Peer(nil, keys); ok {
		t.Error("Peer(nil) is a peer")
	}
	if _, ok := PeerFromRequest(httptest.NewRequest("GET", "/", nil), keys); ok {
		t.Error("a request without TLS is a peer")
	}
}

// TestPeerRecheckedPerRequest unpins a site while its connection stays
// open: its next request is no longer from a peer.
func TestPeerRecheckedPerRequest(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	clientPub, clientPriv := newKey(t)
	var revoked atomic.Bool
	keys := func(pub ed25519.PublicKey) (string, bool) {
		return "embassy-south", !revoked.Load() && pub.Equal(clientPub)
	}
	s := startServer(t, serverConfig(t, serverPriv, keys), keys)
	tr := Transport(clientConfig(t, clientPriv, serverPub))
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i, want := range []string{"peer embassy-south", "anonymous"} {
		resp, err := client.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("request %d: handler said %q, want %q", i, body, want)
		}
		revoked.Store(true)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want the second request on the first one", n)
	}
}

func TestTLS12Refused(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	s := startServer(t, serverConfig(t, serverPriv, keysOf(nil)), keysOf(nil))
	old := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	if _, err := get(t, old, s.URL); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.2 client: %v", err)
	}

	// And our client refuses a TLS 1.2 server, even with the pinned key.
	cert, err := Certificate(serverPriv, "old.example")
	if err != nil {
		t.Fatal(err)
	}
	oldServer := startServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12}, keysOf(nil))
	if _, err := get(t, clientConfig(t, nil, serverPub), oldServer.URL); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.2 server: %v", err)
	}
	if n := s.calls.Load() + oldServer.calls.Load(); n != 0 {
		t.Errorf("handlers ran %d times", n)
	}
}

// ecdsaCertificate is a self-signed P-256 certificate, well formed in
// every way but its key type.
func ecdsaCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ecdsa.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestNonEd25519Refused(t *testing.T) {
	ec := ecdsaCertificate(t)

	t.Run("client", func(t *testing.T) {
		serverPub, serverPriv := newKey(t)
		// Accept every key, so only the key type can refuse it.
		anyKey := func(ed25519.PublicKey) (string, bool) { return "anyone", true }
		s := startServer(t, serverConfig(t, serverPriv, anyKey), anyKey)
		cfg := clientConfig(t, nil, serverPub)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &ec, nil }
		if got, err := get(t, cfg, s.URL); err == nil {
			t.Fatalf("a client with an ECDSA certificate got %q", got)
		}
		if n := s.calls.Load(); n != 0 {
			t.Errorf("handler ran %d times", n)
		}
		s.wantLog(t, "handshake error", "want Ed25519")
	})

	t.Run("server", func(t *testing.T) {
		pub, _ := newKey(t)
		s := startServer(t, &tls.Config{Certificates: []tls.Certificate{ec}, MinVersion: tls.VersionTLS13}, keysOf(nil))
		if _, err := get(t, clientConfig(t, nil, pub), s.URL); err == nil || !strings.Contains(err.Error(), "want Ed25519") {
			t.Errorf("a server with an ECDSA certificate: %v", err)
		}
	})
}

// TestChainRefused: a pinned key inside a chain is still refused, because
// a chain means a CA.
func TestChainRefused(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	clientPub, clientPriv := newKey(t)
	keys := keysOf(map[string]ed25519.PublicKey{"embassy-south": clientPub})
	s := startServer(t, serverConfig(t, serverPriv, keys), keys)
	cert, err := Certificate(clientPriv, clientName)
	if err != nil {
		t.Fatal(err)
	}
	cert.Certificate = append(cert.Certificate, ec(t))
	cfg := clientConfig(t, nil, serverPub)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	if got, err := get(t, cfg, s.URL); err == nil {
		t.Fatalf("a client with a two-certificate chain got %q", got)
	}
	s.wantLog(t, "handshake error", "presented 2 certificates")
}

func ec(t *testing.T) []byte { return ecdsaCertificate(t).Certificate[0] }

func TestSiteKeys(t *testing.T) {
	northPub, _ := newKey(t)
	southPub, _ := newKey(t)
	strangerPub, _ := newKey(t)
	b64 := base64.StdEncoding.EncodeToString
	c := &charter.Charter{Sites: []charter.Site{
		{ID: "embassy-north", TLSKey: b64(northPub)},
		{ID: "embassy-south", TLSKey: b64(southPub)},
	}}
	keys, err := SiteKeys(c)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := keys(southPub); !ok || p != "embassy-south" {
		t.Errorf("south key: %q, %v", p, ok)
	}
	if p, ok := keys(strangerPub); ok {
		t.Errorf("stranger's key is site %q", p)
	}

	c.Sites[1].TLSKey = "not-a-key"
	if _, err := SiteKeys(c); err == nil || !strings.Contains(err.Error(), "sites[1].tls_key (site embassy-south)") {
		t.Errorf("bad key: %v", err)
	}
	c.Sites[1].TLSKey = b64(northPub)
	if _, err := SiteKeys(c); err == nil || !strings.Contains(err.Error(), "same key as site embassy-north") {
		t.Errorf("shared key: %v", err)
	}
}

func TestTransport(t *testing.T) {
	pub, _ := newKey(t)
	cfg := clientConfig(t, nil, pub)
	tr := Transport(cfg)
	if tr.TLSClientConfig == cfg || tr.TLSClientConfig.VerifyConnection == nil || !tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("transport does not hold its own copy of the pinned config")
	}
	if tr.TLSHandshakeTimeout != 5*time.Second || tr.ResponseHeaderTimeout != 30*time.Second ||
		tr.IdleConnTimeout <= 0 || tr.MaxIdleConnsPerHost < 2 || tr.DisableKeepAlives {
		t.Errorf("timeouts or idle settings: %+v", tr)
	}
}

// TestHybridKeyExchange: two sites agree on X25519MLKEM768; a client
// offering only classical X25519 reaches a server without a certificate
// (an official's tool) but not as a site; and a site's client refuses a
// server that cannot do the hybrid group rather than fall back.
func TestHybridKeyExchange(t *testing.T) {
	serverPub, serverPriv := newKey(t)
	clientPub, clientPriv := newKey(t)
	keys := keysOf(map[string]ed25519.PublicKey{"embassy-south": clientPub})
	s := startServer(t, serverConfig(t, serverPriv, keys), keys)
	addr := strings.TrimPrefix(s.URL, "https://")

	handshake := func(cfg *tls.Config) (tls.ConnectionState, error) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		// The server's VerifyConnection runs when it reads the client's
		// Finished: a request and its answer make sure it ran.
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return c.ConnectionState(), err
		}
		_, err = io.ReadAll(c)
		return c.ConnectionState(), err
	}
	cs, err := handshake(clientConfig(t, clientPriv, serverPub))
	if err != nil {
		t.Fatal(err)
	}
	if cs.CurveID != tls.X25519MLKEM768 {
		t.Fatalf("sites negotiated %v, want X25519MLKEM768", cs.CurveID)
	}

	classical := clientConfig(t, clientPriv, serverPub)
	classical.CurvePreferences = []tls.CurveID{tls.X25519}
	classical.VerifyConnection = nil // the server's refusal is under test
	if _, err := handshake(classical); err == nil {
		t.Fatal("a site's client certificate was accepted over classical X25519")
	}

	anon := clientConfig(t, nil, serverPub)
	anon.CurvePreferences = []tls.CurveID{tls.X25519}
	anon.VerifyConnection = nil
	if cs, err := handshake(anon); err != nil || cs.CurveID != tls.X25519 {
		t.Fatalf("an anonymous classical client: %v %v", cs.CurveID, err)
	}

	// A server that offers only classical X25519: a site will not talk.
	old := serverConfig(t, serverPriv, keys)
	old.CurvePreferences = []tls.CurveID{tls.X25519}
	s2 := startServer(t, old, keys)
	if _, err := get(t, clientConfig(t, clientPriv, serverPub), s2.URL); err == nil {
		t.Fatal("a site's client fell back to classical X25519")
	}
}
