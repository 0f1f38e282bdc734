package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// The citizen portal is served on the state's issuer name
// (https://id.demo-republic.example/portal/), which resolves nowhere, and
// over HTTPS only: its cookies are __Host- and Secure, and a browser
// offers passkeys only to a secure origin. The demo's sites listen on
// plain HTTP on loopback, so for `demo --keep` the issuer name gets a TLS
// front on loopback — what a deployment's DNS name and certificate are —
// with a certificate the demo writes to the state directory, forwarding to
// the active site with the Host header kept (the site routes the issuer's
// requests by it).

// IssuerFront is the kept demo's TLS front for the issuer name.
type IssuerFront struct {
	// Addr is the front's loopback address (host:port).
	Addr string
	// Cert is the PEM file of its self-signed certificate for the issuer's
	// host; SPKI is the base64 SHA-256 of its public key, which Chromium's
	// --ignore-certificate-errors-spki-list takes.
	Cert, SPKI string
	// Site is the URL of the site it forwards to.
	Site string

	srv  *http.Server
	done chan struct{}
}

// startIssuerFront listens on loopback with a fresh certificate for the
// issuer's host, written under dir/identity, and forwards to siteURL.
func startIssuerFront(dir, siteURL string) (*IssuerFront, error) {
	target, err := url.Parse(siteURL)
	if err != nil {
		return nil, fmt.Errorf("demo: issuer front: site URL %q: %w", siteURL, err)
	}
	host := issuerHost()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, 30), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("demo: issuer front: certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	f := &IssuerFront{Cert: filepath.Join(dir, "identity", "issuer-tls.pem"), Site: siteURL, done: make(chan struct{})}
	if err := os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("demo: issuer front: %w", err)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	f.SPKI = base64.StdEncoding.EncodeToString(spki[:])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: issuer front: %w", err)
	}
	f.Addr = ln.Addr().String()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the site routes the issuer's requests by Host
			pr.SetXForwarded()
		},
		// A site stopping under a kept browser is not worth a line in
		// the demo's output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	f.srv = &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}}
	go func() {
		defer close(f.done)
		if err := f.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "demo: issuer front: %v\n", err)
		}
	}()
	return f, nil
}

// Close stops the front and waits for it.
func (f *IssuerFront) Close() error {
	err := f.srv.Close()
	<-f.done
	return err
}
