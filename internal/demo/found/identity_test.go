package found

import (
	"context"
	"os"
	"testing"

	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/identity"
)

// TestFoundingIdentityServices: the founding charter's services.access and
// services.identity (written as plain maps, founding being below the
// services) are what the services accept: the access rules parse, and an
// identity service starts over the founded state.
func TestFoundingIdentityServices(t *testing.T) {
	dir := t.TempDir()
	c, err := Init(context.Background(), InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: []byte("found identity test"), WorkFactor: 10}, NoLedger: true})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := access.FromCharter(c)
	if err != nil {
		t.Fatal(err)
	}
	if !rules.IsAuditor(DemoAuditor) || !rules.MayVerify(DemoTaxClient) {
		t.Errorf("access rules: auditor %v, tax office verifies %v", rules.IsAuditor(DemoAuditor), rules.MayVerify(DemoTaxClient))
	}
	var cfg identity.Config
	if ok, err := c.Service(identity.Section, &cfg); !ok || err != nil {
		t.Fatalf("services.identity: %v %v", ok, err)
	}
	if cfg.Issuer != DemoIssuer || len(cfg.Clients) != 2 || cfg.Portal.PasskeyRegistry != DemoPasskeyRegist || cfg.EID.CAs[0].Name != DemoEIDCA {
		t.Errorf("services.identity: %+v", cfg)
	}
	ca, err := ReadCert(IdentityFiles{Dir: dir}.CACert())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ReadCert(IdentityFiles{Dir: dir}.CitizenCert(DemoCitizens[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil || cert.Subject.SerialNumber != DemoSerialPrefix+DemoCitizens[0] {
		t.Errorf("citizen certificate %q: %v", cert.Subject.SerialNumber, err)
	}
	for _, f := range []string{IdentityFiles{Dir: dir}.CAKey(), IdentityFiles{Dir: dir}.CitizenKey(DemoCitizens[0]), IdentityFiles{Dir: dir}.ClientKey(DemoTaxClient)} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
		if _, err := ReadKey(f); err != nil {
			t.Error(err)
		}
	}
}
