package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/vault"
)

// TestEnsureTokenFile: the embedding server provisions its own principal
// once; later starts reuse the token; a stale file is replaced.
func TestEnsureTokenFile(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir, nil)
	ctx := context.Background()
	path := filepath.Join(dir, "kiln-token")
	tok, created, err := tv.EnsureTokenFile(ctx, "kiln", path)
	if err != nil || !created || !strings.HasPrefix(tok, "kvt1.") {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v %v", fi.Mode(), err)
	}
	tok2, created, err := tv.EnsureTokenFile(ctx, "kiln", path)
	if err != nil || created || tok2 != tok {
		t.Fatalf("second: %v %v", created, err)
	}
	// The principal authenticates but has no permission.
	var e akvErr
	resp, _ := tv.do(t, "GET", "/keys?api-version=7.4", tok, "", &e)
	if resp.StatusCode != 403 || e.Error.Code != "Forbidden" {
		t.Fatalf("kiln without policy: %d %+v", resp.StatusCode, e)
	}
	os.WriteFile(path, []byte("kvt1.stale\n"), 0o600)
	tok3, created, err := tv.EnsureTokenFile(ctx, "kiln", path)
	if err != nil || !created || tok3 == tok {
		t.Fatalf("stale: %v %v", created, err)
	}
	// Go API calls are audited as the local principal.
	recs, err := tv.Audit(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Principal == vault.LocalPrincipal && r.Operation == "token.create" && r.Key == "kiln" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d local token.create records, want 2", n)
	}
}

func TestMissingMasterKey(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir, nil)
	tv.stop()
	os.Remove(filepath.Join(dir, "master.key"))
	_, err := vault.Open(context.Background(), vault.Config{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "master key file") {
		t.Fatalf("open without master key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "master.key")); err == nil {
		t.Fatal("a new master key was created over existing state")
	}
}

// TestUserCertificate: the vault serves a user-supplied certificate.
func TestUserCertificate(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "user cert"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	tv := startVault(t, filepath.Join(dir, "data"), func(c *vault.Config) { c.CertFile, c.KeyFile = certFile, keyFile })
	if tv.CAFile() != "" {
		t.Fatalf("CAFile = %q with a user certificate", tv.CAFile())
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tv.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var out struct{ Value []any }
	if resp, b := tv.do(t, "GET", "/keys?api-version=7.4", tv.admin, "", &out); resp.StatusCode != 200 {
		t.Fatalf("list over user cert: %d %s", resp.StatusCode, b)
	}
	if _, err := vault.Open(context.Background(), vault.Config{DataDir: t.TempDir(), CertFile: certFile}); err == nil {
		t.Fatal("CertFile without KeyFile accepted")
	}
}
