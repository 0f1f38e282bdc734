package found

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/seal"
)

// The Demo Republic's identity services: an eID CA whose certificates sign
// citizens in, two demo citizens holding such certificates, and two
// relying parties with private_key_jwt keys: the tax office, whose key
// the demo keeps in the state directory (mode 0600), unsealed, so that the
// story can act as it (in a real state the CA is a separate institution
// and the tax office holds its own key), and the citizen portal every
// site serves at <issuer>/portal/ (site/portal.go), whose key is a state
// key derived from the root (state.PortalKey), so that any active site
// authenticates as the one portal.

// Demo identity constants: the state's issuer and the parties' names.
const (
	DemoIssuer        = "https://id.demo-republic.example"
	DemoEIDCA         = "demo-eid-ca"
	DemoSerialPrefix  = "PNODR-"
	DemoPortalRPID    = "id.demo-republic.example" // the issuer's host: the portal is served on the issuer's name
	DemoPortalOrigin  = DemoIssuer
	DemoTaxClient     = "tax-office"
	DemoTaxRedirect   = "https://tax.demo-republic.example/callback"
	DemoPortalClient  = "portal"
	DemoPortalReturn  = DemoIssuer + "/portal/callback"
	DemoPortalURL     = DemoIssuer + "/portal/"
	DemoAuditor       = "min-justice"
	DemoCRLRegistry   = "eid-crl"
	DemoPasskeyRegist = "passkeys"
)

// DemoCitizens are the persons holding demo eID certificates; their
// person records are written by the demo, not at founding.
var DemoCitizens = []string{"DR-CITIZEN-0001", "DR-CITIZEN-0002"}

// IdentityFiles are where founding leaves the demo identity keys.
type IdentityFiles struct{ Dir string }

// CACert is the eID CA's certificate (PEM) and CAKey its key (PKCS #8).
func (f IdentityFiles) CACert() string { return filepath.Join(f.Dir, "identity", "eid-ca.pem") }

// CAKey is the eID CA's private key (PKCS #8 PEM, mode 0600).
func (f IdentityFiles) CAKey() string { return filepath.Join(f.Dir, "identity", "eid-ca.key") }

// CitizenCert is a demo citizen's eID certificate (PEM).
func (f IdentityFiles) CitizenCert(person string) string {
	return filepath.Join(f.Dir, "identity", "eid-"+person+".pem")
}

// CitizenKey is a demo citizen's eID key (PKCS #8 PEM, mode 0600).
func (f IdentityFiles) CitizenKey(person string) string {
	return filepath.Join(f.Dir, "identity", "eid-"+person+".key")
}

// ClientKey is the tax office's private_key_jwt key (PKCS #8 PEM, mode
// 0600); its key id is the client id followed by "-1". The portal has no
// key file: its key is derived from the root (state.PortalKey).
func (f IdentityFiles) ClientKey(client string) string {
	return filepath.Join(f.Dir, "identity", "client-"+client+".key")
}

// addIdentity generates the demo's eID CA, citizens' certificates and
// the tax office's key under dir, derives the portal's client key from
// root, and adds services.access and services.identity to c with the
// registries they need (eID CRLs and passkeys).
func addIdentity(c *charter.Charter, dir string, root *seal.RootKey) error {
	f := IdentityFiles{Dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "identity"), 0o700); err != nil {
		return fmt.Errorf("identity keys: %w", err)
	}
	now := time.Now()
	caKey, err := writeNewKey(f.CAKey())
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Demo Republic eID CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("eID CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(f.CACert(), caPEM, 0o644); err != nil {
		return fmt.Errorf("eID CA certificate: %w", err)
	}
	for i, person := range DemoCitizens {
		k, err := writeNewKey(f.CitizenKey(person))
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(100 + i)),
			Subject:   pkix.Name{CommonName: "Demo citizen " + person, SerialNumber: DemoSerialPrefix + person},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("eID certificate of %s: %w", person, err)
		}
		if err := os.WriteFile(f.CitizenCert(person), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return fmt.Errorf("eID certificate of %s: %w", person, err)
		}
	}
	jwks := map[string]string{}
	k, err := writeNewKey(f.ClientKey(DemoTaxClient))
	if err != nil {
		return err
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: DemoTaxClient + "-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		return err
	}
	jwks[DemoTaxClient] = string(b)
	kr := seal.NewKeyring(c.Guest.ID, root)
	jwks[DemoPortalClient], err = state.PortalJWKS(kr)
	kr.Wipe()
	if err != nil {
		return err
	}

	all := []string{"home", "embassy-north", "embassy-south"}
	c.Registries = append(c.Registries,
		charter.Registry{Name: DemoCRLRegistry, Classification: charter.ClassPublic, Sites: all, Sync: charter.SyncAsync},
		charter.Registry{Name: DemoPasskeyRegist, Classification: charter.ClassSecret, Sites: all, Index: []string{"person_id"}, Sync: charter.SyncAsync})
	// The sections are written as the charter holds them (YAML maps):
	// founding sits below the services in the package layers, and the
	// services check them strictly when a site starts them.
	if err := c.SetService("access", map[string]any{
		"auditors": []string{DemoAuditor},
		"officials": map[string]any{
			"registrar": map[string]any{"population": []string{"read", "find", "write"}, "land": []string{"read", "find", "write"}},
		},
		"citizens": map[string]string{"population": "national_id", "land": "owner_id"},
		"clients": map[string]any{
			DemoTaxClient: map[string]any{"registries": []string{"population", "land"}, "claims": []string{"name", "birthdate"}, "verify": true},
		},
	}); err != nil {
		return err
	}
	return c.SetService("identity", map[string]any{
		"issuer":          DemoIssuer,
		"person_registry": "population",
		"claims":          map[string]string{"given_name": "first_name", "family_name": "last_name", "birthdate": "birth_date"},
		"eid": map[string]any{
			"cas":           []map[string]string{{"name": DemoEIDCA, "certificate": string(caPEM)}},
			"crl_registry":  DemoCRLRegistry,
			"serial_prefix": DemoSerialPrefix,
		},
		"portal": map[string]any{"client_id": DemoPortalClient, "rp_id": DemoPortalRPID, "rp_name": "Demo Republic",
			"origins": []string{DemoPortalOrigin}, "passkey_registry": DemoPasskeyRegist},
		"clients": []map[string]any{
			{"id": DemoTaxClient, "name": "Tax and Customs Board", "jwks": jwks[DemoTaxClient], "redirect_uris": []string{DemoTaxRedirect},
				"scopes": []string{"openid", "profile", "records", "verify"}},
			{"id": DemoPortalClient, "name": "Demo Republic citizen portal", "jwks": jwks[DemoPortalClient], "redirect_uris": []string{DemoPortalReturn},
				"scopes": []string{"openid", "profile", "records"}},
		},
	})
}

// writeNewKey generates a P-256 key and writes it, PKCS #8 PEM, mode 0600.
func writeNewKey(path string) (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return k, nil
}

// ReadKey reads a P-256 key written at founding (PKCS #8 PEM).
func ReadKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("key %s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s: not an ECDSA key", path)
	}
	return ek, nil
}

// ReadCert reads a certificate written at founding (PEM).
func ReadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certificate %s: not PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	return c, nil
}
