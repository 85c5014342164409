package vault_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/vault"
)

// TestRestart: keys, versions, policies, tokens and soft-deleted keys
// survive a restart; wrapped values still unwrap.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir, nil)
	ctx := context.Background()
	c := tv.azClient(t, tv.admin)
	k, err := c.CreateKey(ctx, "live", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v1 := k.Key.KID.Version()
	secret := randBytes(32)
	w, err := c.WrapKey(ctx, "live", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := c.RotateKey(ctx, "live", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, "gone", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKey(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	appTok := tv.principal(t, "app", []string{"get", "unwrapKey"})
	admin := tv.admin
	tv.stop()

	tv2 := startVault(t, dir, nil)
	if tv2.admin != admin {
		t.Fatal("admin token changed across restart")
	}
	c2 := tv2.azClient(t, admin)
	got, err := c2.GetKey(ctx, "live", "", nil)
	if err != nil || got.Key.KID.Version() != rot.Key.KID.Version() {
		t.Fatalf("current version after restart: %v", err)
	}
	var n int
	for pg := c2.NewListKeyPropertiesVersionsPager("live", nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Value)
	}
	if n != 2 {
		t.Fatalf("%d versions after restart", n)
	}
	app := tv2.azClient(t, appTok)
	u, err := app.UnwrapKey(ctx, "live", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil)
	if err != nil || !bytes.Equal(u.Result, secret) {
		t.Fatalf("unwrap after restart with app token: %v", err)
	}
	_, err = app.WrapKey(ctx, "live", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	respErr(t, err, 403, "Forbidden")
	if _, err := c2.GetDeletedKey(ctx, "gone", nil); err != nil {
		t.Fatalf("soft-deleted key after restart: %v", err)
	}
	if _, err := c2.RecoverDeletedKey(ctx, "gone", nil); err != nil {
		t.Fatalf("recover after restart: %v", err)
	}
}

// TestAtRest: files have safe modes, and the state file holds no usable key
// material: sealed blobs are not PKCS#8, and a wrong master key refuses to
// open the vault.
func TestAtRest(t *testing.T) {
	dir := t.TempDir()
	tv := startVault(t, dir, nil)
	c := tv.azClient(t, tv.admin)
	if _, err := c.CreateKey(context.Background(), "r", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatal(err)
	}
	tv.stop()
	for name, want := range map[string]os.FileMode{"master.key": 0o600, "admin-token": 0o600, "state.json": 0o600, "ca-key.pem": 0o600, "audit.log": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", name, fi.Mode().Perm(), want)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(tv.admin)) || bytes.Contains(raw, []byte("PRIVATE")) {
		t.Fatal("state file holds a token or a PEM private key")
	}
	var st struct {
		Keys map[string]struct{ Versions []struct{ Sealed []byte } }
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	sealed := st.Keys["r"].Versions[0].Sealed
	if len(sealed) < 1000 {
		t.Fatalf("sealed blob is %d bytes", len(sealed))
	}
	for i := range sealed {
		if _, err := x509.ParsePKCS8PrivateKey(sealed[i:]); err == nil {
			t.Fatal("plain PKCS#8 key in state file")
		}
		if i > 64 {
			break
		}
	}
	// Another master key cannot open this state.
	if err := os.WriteFile(filepath.Join(dir, "master.key"), bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Open(context.Background(), vault.Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("open with wrong master key: %v", err)
	}
	os.Chmod(filepath.Join(dir, "master.key"), 0o644)
	if _, err := vault.Open(context.Background(), vault.Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open with world-readable master key: %v", err)
	}
}

// TestHelperVaultProcess is not a test: it is the child process of
// TestKill9Durability, serving a vault until it is killed.
func TestHelperVaultProcess(t *testing.T) {
	dir := os.Getenv("KILN_VAULT_CHILD_DIR")
	if dir == "" {
		t.Skip("child process of TestKill9Durability only")
	}
	v, err := vault.Open(context.Background(), vault.Config{DataDir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	ln, err := v.Listen()
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("URL", v.URL())
	v.Serve(context.Background(), ln)
}

// TestKill9Durability runs the vault in a child process, makes changes,
// kills it with SIGKILL right after the last acknowledgement, and checks that
// every acknowledged change is there.
func TestKill9Durability(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperVaultProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "KILN_VAULT_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	url := ""
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			url = u
			break
		}
	}
	deadline.Stop()
	if url == "" {
		t.Fatal("child did not start")
	}
	// A client of the child, trusting its CA.
	tvc := &testVault{}
	*tvc = *startClientFor(t, dir, url)
	ctx := context.Background()
	c := tvc.azClient(t, tvc.admin)
	type wrapped struct {
		name, version string
		ct, secret    []byte
	}
	var ws []wrapped
	for i := range 8 {
		name := fmt.Sprintf("k%d", i)
		k, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := randBytes(32)
		w, err := c.WrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: s}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, wrapped{name, k.Key.KID.Version(), w.Result, s})
	}
	if _, err := c.DeleteKey(ctx, "k7", nil); err != nil {
		t.Fatal(err)
	}
	tok := tvc.principal(t, "app", []string{"unwrapKey"})
	// Acknowledged: kill at once.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	tv := startVault(t, dir, nil)
	app := tv.azClient(t, tok)
	for _, w := range ws[:7] {
		u, err := app.UnwrapKey(ctx, w.name, w.version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: w.ct}, nil)
		if err != nil || !bytes.Equal(u.Result, w.secret) {
			t.Fatalf("%s after kill -9: %v", w.name, err)
		}
	}
	if _, err := tv.azClient(t, tv.admin).GetDeletedKey(ctx, "k7", nil); err != nil {
		t.Fatalf("deleted k7 after kill -9: %v", err)
	}
}

// startClientFor builds a testVault that only acts as a client of a vault
// served elsewhere from dir.
func startClientFor(t *testing.T, dir, url string) *testVault {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tv := &testVault{dir: dir, admin: strings.TrimSpace(string(tok)), pool: pool, remoteURL: url}
	tv.client = newClient(pool)
	return tv
}
