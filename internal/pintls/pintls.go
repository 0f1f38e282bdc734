// Package pintls is mutual TLS between chancery sites, pinned to the
// Ed25519 "site-tls" keys the charter lists (charter.Site.TLSKey), with no
// certificate authority anywhere.
//
// Why not a CA: the charter is the trust root of a guest state. It is
// signed by the guest's officials and by every host for its own sites, and
// it already names each site's TLS key. A CA would be a second root outside
// that agreement, and the CAs within reach are the wrong ones: a host
// state's public or national CA — or any CA a host can compel — could issue
// a certificate for another site's name and sit between two sites of a
// guest it hosts, reading replication or feeding a site forged data. With
// pinning, the only certificate a site accepts for a peer is one whose key
// the signed charter gives that peer, so impersonating a site takes that
// site's private key or a charter amendment signed by the guest's quorum.
//
// Certificates are therefore only envelopes for a key: self-signed, made in
// memory from the site-tls key at start-up, never written to disk, and
// their names, dates and serials are not checked. TLS 1.3 proves possession
// of the key in every handshake (CertificateVerify); this package checks
// that the key is the pinned one on every handshake, resumed or not
// (tls.Config.VerifyConnection, which crypto/tls never skips).
//
// Servers request but do not require a client certificate: officials reach
// the same endpoints with signed requests and no certificate. A handler
// that only sites may call (replication) must call PeerFromRequest.
//
// Key exchange is pinned to the hybrid post-quantum group X25519MLKEM768
// (ML-KEM-768 with X25519): what two sites send each other today must not
// be readable by whoever records it and has a quantum computer later. A
// client of this package offers that group alone, so no one in the middle
// can downgrade it; a server accepts a classical X25519 exchange only from
// a client without a certificate (an official's or auditor's tool that
// cannot do ML-KEM yet), never from a site.
package pintls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/chancery-gov/chancery/charter"
)

// PeerKeys maps a client's certificate key to the site it belongs to, or
// reports false for a key that is not pinned. SiteKeys builds one from a
// charter.
type PeerKeys func(pub ed25519.PublicKey) (peer string, ok bool)

// PQGroup is the only key exchange a site offers as a client, and the only
// one a server accepts from a client that presents a site certificate.
const PQGroup = tls.X25519MLKEM768

// checkGroup refuses a handshake that did not use PQGroup.
func checkGroup(cs tls.ConnectionState) error {
	if cs.CurveID != PQGroup {
		return fmt.Errorf("pintls: key exchange %v, want the hybrid post-quantum %v", cs.CurveID, PQGroup)
	}
	return nil
}

// clientName is the DNS name in a client-only certificate; nobody checks
// it, since the key is what is pinned.
const clientName = "chancery-site"

// Certificate returns a self-signed X.509 certificate for key, made in
// memory. name is the DNS name (or IP) it names; 127.0.0.1 and ::1 are
// always added so that sites can talk over loopback in tests and demos.
// Validity runs from an hour ago, to tolerate clock skew with peers that
// might check it, to ten years on, since rotation is by charter amendment,
// not by expiry.
func Certificate(key ed25519.PrivateKey, name string) (tls.Certificate, error) {
	if err := checkPrivateKey(key); err != nil {
		return tls.Certificate{}, fmt.Errorf("pintls certificate for %q: %w", name, err)
	}
	if name == "" {
		return tls.Certificate{}, errors.New("pintls certificate: empty name")
	}
	// 128 random bits: serials must be unique per issuer, and every
	// certificate here is its own issuer, so this is only for tools that
	// index certificates by serial.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pintls certificate for %q: serial: %w", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(name); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pintls certificate for %q: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pintls certificate for %q: %w", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerConfig returns a TLS 1.3 server configuration presenting key's
// certificate under name. It requests a client certificate without
// requiring one; a client that presents one must present a single
// self-signed Ed25519 certificate whose key clientKeys accepts, or the
// handshake fails. Handlers learn the peer with PeerFromRequest.
func ServerConfig(key ed25519.PrivateKey, name string, clientKeys PeerKeys) (*tls.Config, error) {
	if clientKeys == nil {
		return nil, fmt.Errorf("pintls server config for %q: clientKeys is nil", name)
	}
	cert, err := Certificate(key, name)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The hybrid group first; classical X25519 only for clients that
		// present no certificate (VerifyConnection refuses it for a site).
		CurvePreferences: []tls.CurveID{PQGroup, tls.X25519},
		// Request, do not require: officials call with signed requests
		// and no certificate. Go does not verify what a client sends under
		// RequestClientCert; VerifyConnection does.
		ClientAuth: tls.RequestClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			if _, err := peer(cs.PeerCertificates, clientKeys); err != nil {
				return err
			}
			return checkGroup(cs)
		},
		// Every connection does a full handshake against the current
		// pins; replication keeps connections open, so tickets would
		// save little.
		SessionTicketsDisabled: true,
	}, nil
}

// ClientConfig returns a TLS 1.3 client configuration that accepts the
// server only if its certificate's key is exactly server, and presents
// key's certificate; key may be nil for a client without one.
func ClientConfig(key ed25519.PrivateKey, server ed25519.PublicKey) (*tls.Config, error) {
	if len(server) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("pintls client config: server key is %d bytes, want %d", len(server), ed25519.PublicKeySize)
	}
	// Typed, not []byte: PublicKey.Equal is false for any other type.
	pin := ed25519.PublicKey(bytes.Clone(server))
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Only the hybrid group is offered: a server that cannot do it
		// fails the handshake rather than falling back to X25519.
		CurvePreferences: []tls.CurveID{PQGroup},
		// The chain is not verified against any CA, and the name is not
		// checked: VerifyConnection compares the key with the pin, which
		// is stronger than both, and it runs on every handshake,
		// including resumed ones.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			// No server name in these errors: it is empty for an IP
			// address, and the caller's error names the URL.
			pub, err := selfSignedKey(cs.PeerCertificates)
			if err != nil {
				return fmt.Errorf("pintls: server: %w", err)
			}
			if !pub.Equal(pin) {
				// Base64, as the charter writes keys, so the message can be
				// searched for in it.
				return fmt.Errorf("pintls: server presented key %s, pinned key is %s", b64(pub), b64(pin))
			}
			return checkGroup(cs)
		},
	}
	if key != nil {
		cert, err := Certificate(key, clientName)
		if err != nil {
			return nil, fmt.Errorf("pintls client config: %w", err)
		}
		// Always send it: Certificates would be filtered against the
		// server's acceptable CAs, and there are none.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg, nil
}

// PeerFromRequest returns the site that made r, if it came over TLS with a
// certificate whose key clientKeys accepts. Pass the current pins: the
// check is made again here, so a site removed from the charter since its
// connection was opened is no longer a peer.
func PeerFromRequest(r *http.Request, clientKeys PeerKeys) (peer string, ok bool) {
	return Peer(r.TLS, clientKeys)
}

// Peer is PeerFromRequest for a connection state; state may be nil.
func Peer(state *tls.ConnectionState, clientKeys PeerKeys) (string, bool) {
	if state == nil || len(state.PeerCertificates) == 0 || clientKeys == nil {
		return "", false
	}
	p, err := peer(state.PeerCertificates, clientKeys)
	return p, err == nil
}

// SiteKeys returns the PeerKeys of every site in c, naming each by its id.
// Two sites sharing a TLS key would be indistinguishable, so that is an
// error.
func SiteKeys(c *charter.Charter) (PeerKeys, error) {
	byKey := make(map[string]string, len(c.Sites))
	for i, s := range c.Sites {
		pub, err := s.TLSPublicKey()
		if err != nil {
			return nil, fmt.Errorf("sites[%d].tls_key (site %s): %w", i, s.ID, err)
		}
		if other, dup := byKey[string(pub)]; dup {
			return nil, fmt.Errorf("sites[%d].tls_key (site %s): same key as site %s, peers would be indistinguishable", i, s.ID, other)
		}
		byKey[string(pub)] = s.ID
	}
	return func(pub ed25519.PublicKey) (string, bool) {
		id, ok := byKey[string(pub)]
		return id, ok
	}, nil
}

// Transport returns an HTTP transport for replication over cfg (from
// ClientConfig). Connections are kept between requests, since each
// handshake costs a round trip to another continent. It speaks HTTP/1.1:
// one transfer per connection, so a slow blob cannot stall the others
// behind HTTP/2 flow control.
func Transport(cfg *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		// Pinning makes an egress proxy harmless: it sees only TLS.
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       cfg.Clone(),
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   8,
	}
}

// peer identifies a client by its certificate.
func peer(certs []*x509.Certificate, clientKeys PeerKeys) (string, error) {
	pub, err := selfSignedKey(certs)
	if err != nil {
		return "", fmt.Errorf("pintls: client: %w", err)
	}
	p, ok := clientKeys(pub)
	if !ok {
		return "", fmt.Errorf("pintls: client key %s is not pinned for any site", b64(pub))
	}
	return p, nil
}

// selfSignedKey returns the key of a chain that is exactly one self-signed
// Ed25519 certificate. A longer chain means a CA is involved, which is what
// this package exists to avoid.
func selfSignedKey(certs []*x509.Certificate) (ed25519.PublicKey, error) {
	if len(certs) != 1 {
		return nil, fmt.Errorf("presented %d certificates, want exactly one self-signed certificate", len(certs))
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate key is %v, want Ed25519", leaf.PublicKeyAlgorithm)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return nil, fmt.Errorf("certificate is not self-signed by its key: %w", err)
	}
	return pub, nil
}

// checkPrivateKey refuses keys whose public half does not match the seed:
// they would yield certificates that no peer's pin matches, failing far
// from the cause.
func checkPrivateKey(key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if !ed25519.NewKeyFromSeed(key.Seed()).Equal(key) {
		return errors.New("private key's public half does not match its seed")
	}
	return nil
}

func b64(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }
