package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/vault"
)

const vaultUsage = `Usage: kiln vault <command> [flags]

  serve --addr HOST:PORT --data DIR [--cert FILE --key FILE] [--url URL]
        [--purge-protection] [--retention-days N]
                                      run the built-in key vault (HTTPS)
  token create PRINCIPAL              issue a bearer token (shown once)
  token revoke PRINCIPAL              revoke every token of PRINCIPAL
  policy set PRINCIPAL PERM[,PERM…]   grant exactly these permissions
  policy remove PRINCIPAL             remove the principal's policy
  policy list                         list policies
  audit [--since RFC3339]             print audit records (JSON lines)

Permissions: get, list, wrapKey, unwrapKey, create, update, delete, rotate, purge.
Client flags (token, policy, audit): --vault URL (env KILN_VAULT_URL,
default https://127.0.0.1:8443), --token TOKEN (env KILN_VAULT_TOKEN) or
--token-file FILE (env KILN_VAULT_TOKEN_FILE), --ca FILE (env KILN_VAULT_CA).
The admin token is in {data}/admin-token.
`

const keyUsage = `Usage: kiln key <command> [flags]

  create NAME [--kty RSA|oct] [--size BITS]   create a key (RSA 2048/3072/4096, oct 256)
  rotate NAME                                 add a new current version
  get NAME [VERSION]                          show a key (JSON)
  list                                        list keys
  versions NAME                               list a key's versions
  disable NAME [VERSION]                      disable the current (or given) version
  enable NAME [VERSION]                       enable the current (or given) version
  delete NAME                                 soft-delete (recoverable)
  recover NAME                                recover a soft-deleted key
  purge NAME                                  permanently remove a soft-deleted key

Flags: --vault URL (env KILN_VAULT_URL, default https://127.0.0.1:8443),
--token TOKEN (env KILN_VAULT_TOKEN) or --token-file FILE (env
KILN_VAULT_TOKEN_FILE), --ca FILE (env KILN_VAULT_CA; default: system roots).
`

// vaultClientFlags are the connection flags shared by vault and key clients.
type vaultClientFlags struct {
	url, token, tokenFile, ca string
}

func vaultEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (f *vaultClientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "vault", vaultEnv("KILN_VAULT_URL", "https://127.0.0.1:8443"), "vault base URL")
	fs.StringVar(&f.token, "token", os.Getenv("KILN_VAULT_TOKEN"), "bearer token")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("KILN_VAULT_TOKEN_FILE"), "file holding the bearer token")
	fs.StringVar(&f.ca, "ca", os.Getenv("KILN_VAULT_CA"), "PEM CA certificate to trust (default: system roots)")
}

// connect returns the vault URL, token and an HTTP client trusting --ca.
func (f *vaultClientFlags) connect() (string, string, *http.Client, error) {
	tok := f.token
	if tok == "" && f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", "", nil, fmt.Errorf("read token file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return "", "", nil, errors.New("no vault token: give --token or --token-file (or KILN_VAULT_TOKEN / KILN_VAULT_TOKEN_FILE)")
	}
	u, err := url.Parse(f.url)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", "", nil, fmt.Errorf("vault URL %q must be https://HOST[:PORT]", f.url)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return "", "", nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", "", nil, fmt.Errorf("CA file %s holds no PEM certificate", f.ca)
		}
		tlsCfg.RootCAs = pool
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}}
	return strings.TrimRight(f.url, "/"), tok, client, nil
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments, and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// runVault implements "kiln vault …".
func runVault(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, vaultUsage)
		if len(args) == 0 {
			return errors.New("no vault command given")
		}
		return nil
	}
	switch args[0] {
	case "serve":
		return runVaultServe(ctx, args[1:], stdout, stderr)
	case "token", "policy", "audit":
		return runVaultAdmin(ctx, args, stdout, stderr)
	}
	fmt.Fprint(stderr, vaultUsage)
	return fmt.Errorf("unknown vault command %q", args[0])
}

func runVaultServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln vault serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", vault.DefaultAddr, "listen address HOST:PORT")
	data := fs.String("data", "./kiln-vault", "data directory (state, master key, CA, admin token, audit log)")
	certFile := fs.String("cert", "", "PEM server certificate (default: issued by the vault's own CA)")
	keyFile := fs.String("key", "", "PEM private key for --cert")
	pubURL := fs.String("url", "", "public base URL used in key ids (default https://{addr})")
	purgeProt := fs.Bool("purge-protection", false, "refuse purge of deleted keys (irreversible for this data dir)")
	retention := fs.Int("retention-days", 90, "days a deleted key stays recoverable (7-90)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("vault serve: unexpected argument %q", pos[0])
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("vault serve: --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	v, err := vault.Open(ctx, vault.Config{DataDir: *data, Addr: *addr, URL: *pubURL, Logger: log,
		CertFile: *certFile, KeyFile: *keyFile, PurgeProtection: *purgeProt, RetentionDays: *retention})
	if err != nil {
		return err
	}
	defer v.Close()
	ln, err := v.Listen()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kiln vault listening on %s\n", v.URL())
	if ca := v.CAFile(); ca != "" {
		fmt.Fprintf(stdout, "  CA certificate: %s\n", ca)
	}
	fmt.Fprintf(stdout, "  admin token:    %s\n", v.AdminTokenFile())
	return v.Serve(ctx, ln)
}

// vaultCall sends an admin request and decodes a JSON answer into out.
func vaultCall(ctx context.Context, client *http.Client, method, u, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s %s: %s: %s: %s", method, u, resp.Status, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, u, err)
		}
	}
	return nil
}

func runVaultAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	group := args[0]
	fs := flag.NewFlagSet("kiln vault "+group, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf vaultClientFlags
	cf.register(fs)
	since := fs.String("since", "", "audit: only records at or after this RFC 3339 time")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	base, tok, client, err := cf.connect()
	if err != nil {
		return fmt.Errorf("vault %s: %w", group, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	sub := ""
	if len(pos) > 0 {
		sub = pos[0]
	}
	need := func(n int, usage string) error {
		if len(pos) != n {
			return fmt.Errorf("usage: kiln vault %s", usage)
		}
		return nil
	}
	switch {
	case group == "token" && sub == "create":
		if err := need(2, "token create PRINCIPAL"); err != nil {
			return err
		}
		var out struct{ Principal, Token string }
		if err := vaultCall(ctx, client, http.MethodPost, base+"/principals/"+url.PathEscape(pos[1])+"/tokens", tok, nil, &out); err != nil {
			return err
		}
		fmt.Fprintln(stdout, out.Token)
		return nil
	case group == "token" && sub == "revoke":
		if err := need(2, "token revoke PRINCIPAL"); err != nil {
			return err
		}
		var out struct{ Revoked int }
		if err := vaultCall(ctx, client, http.MethodDelete, base+"/principals/"+url.PathEscape(pos[1])+"/tokens", tok, nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d token(s) of %s\n", out.Revoked, pos[1])
		return nil
	case group == "policy" && sub == "set":
		if len(pos) < 2 {
			return errors.New("usage: kiln vault policy set PRINCIPAL PERM[,PERM…]")
		}
		perms := []string{}
		for _, p := range pos[2:] {
			for _, q := range strings.Split(p, ",") {
				if q = strings.TrimSpace(q); q != "" {
					perms = append(perms, q)
				}
			}
		}
		var out vault.Policy
		if err := vaultCall(ctx, client, http.MethodPut, base+"/policies/"+url.PathEscape(pos[1]), tok, map[string]any{"permissions": perms}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s\n", out.Principal, strings.Join(out.Permissions, ","))
		return nil
	case group == "policy" && sub == "remove":
		if err := need(2, "policy remove PRINCIPAL"); err != nil {
			return err
		}
		if err := vaultCall(ctx, client, http.MethodDelete, base+"/policies/"+url.PathEscape(pos[1]), tok, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed policy of %s\n", pos[1])
		return nil
	case group == "policy" && sub == "list":
		var out struct{ Value []vault.Policy }
		if err := vaultCall(ctx, client, http.MethodGet, base+"/policies", tok, nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PRINCIPAL\tPERMISSIONS")
		for _, p := range out.Value {
			fmt.Fprintf(tw, "%s\t%s\n", p.Principal, strings.Join(p.Permissions, ","))
		}
		return tw.Flush()
	case group == "audit" && sub == "":
		q := ""
		if *since != "" {
			if _, err := time.Parse(time.RFC3339, *since); err != nil {
				return fmt.Errorf("vault audit: --since must be RFC 3339: %w", err)
			}
			q = "?since=" + url.QueryEscape(*since)
		}
		var out struct{ Value []json.RawMessage }
		if err := vaultCall(ctx, client, http.MethodGet, base+"/audit"+q, tok, nil, &out); err != nil {
			return err
		}
		for _, r := range out.Value {
			fmt.Fprintln(stdout, string(r))
		}
		return nil
	}
	fmt.Fprint(stderr, vaultUsage)
	return fmt.Errorf("unknown vault command %q", strings.TrimSpace(group+" "+sub))
}

// staticTokenCredential is an azcore.TokenCredential for a vault bearer token.
type staticTokenCredential string

func (s staticTokenCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// runKey implements "kiln key …" with the Azure SDK keys client, so it works
// against the built-in vault and against Azure Key Vault alike.
func runKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, keyUsage)
		if len(args) == 0 {
			return errors.New("no key command given")
		}
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("kiln key "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf vaultClientFlags
	cf.register(fs)
	kty := fs.String("kty", "RSA", "create: key type, RSA or oct")
	size := fs.Int("size", 0, "create: key size in bits (RSA 2048/3072/4096, default 3072; oct 256)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	base, tok, httpClient, err := cf.connect()
	if err != nil {
		return fmt.Errorf("key %s: %w", cmd, err)
	}
	c, err := azkeys.NewClient(base, staticTokenCredential(tok), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: httpClient, Retry: policy.RetryOptions{MaxRetries: 2}},
		// The built-in vault is not under vault.azure.net.
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		return fmt.Errorf("key %s: %w", cmd, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	name, version := "", ""
	if len(pos) > 0 {
		name = pos[0]
	}
	if len(pos) > 1 {
		version = pos[1]
	}
	maxArgs := map[string]int{"list": 0, "get": 2, "disable": 2, "enable": 2}
	mx, ok := maxArgs[cmd]
	if !ok {
		mx = 1
	}
	if cmd != "list" && name == "" {
		return fmt.Errorf("key %s: give the key name", cmd)
	}
	if len(pos) > mx {
		return fmt.Errorf("key %s: unexpected argument %q", cmd, pos[mx])
	}
	printKID := func(kid *azkeys.ID, attrs *azkeys.KeyAttributes) {
		enabled := attrs != nil && attrs.Enabled != nil && *attrs.Enabled
		fmt.Fprintf(stdout, "%s\tenabled=%t\n", *kid, enabled)
	}
	switch cmd {
	case "create":
		p := azkeys.CreateKeyParameters{}
		switch strings.ToLower(*kty) {
		case "rsa":
			p.Kty = to.Ptr(azkeys.KeyTypeRSA)
			if *size == 0 {
				*size = 3072
			}
		case "oct":
			p.Kty = to.Ptr(azkeys.KeyTypeOct)
			if *size == 0 {
				*size = 256
			}
		default:
			return fmt.Errorf("key create: --kty must be RSA or oct, not %q", *kty)
		}
		p.KeySize = to.Ptr(int32(*size))
		r, err := c.CreateKey(ctx, name, p, nil)
		if err != nil {
			return fmt.Errorf("key create: %w", keyCmdErr(err))
		}
		printKID(r.Key.KID, r.Attributes)
	case "rotate":
		r, err := c.RotateKey(ctx, name, nil)
		if err != nil {
			return fmt.Errorf("key rotate: %w", keyCmdErr(err))
		}
		printKID(r.Key.KID, r.Attributes)
	case "get":
		r, err := c.GetKey(ctx, name, version, nil)
		if err != nil {
			return fmt.Errorf("key get: %w", keyCmdErr(err))
		}
		b, _ := json.MarshalIndent(r.KeyBundle, "", "  ")
		fmt.Fprintln(stdout, string(b))
	case "list":
		for pg := c.NewListKeyPropertiesPager(nil); pg.More(); {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("key list: %w", keyCmdErr(err))
			}
			for _, it := range page.Value {
				printKID(it.KID, it.Attributes)
			}
		}
	case "versions":
		for pg := c.NewListKeyPropertiesVersionsPager(name, nil); pg.More(); {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("key versions: %w", keyCmdErr(err))
			}
			for _, it := range page.Value {
				printKID(it.KID, it.Attributes)
			}
		}
	case "disable", "enable":
		r, err := c.UpdateKey(ctx, name, version, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(cmd == "enable")}}, nil)
		if err != nil {
			return fmt.Errorf("key %s: %w", cmd, keyCmdErr(err))
		}
		printKID(r.Key.KID, r.Attributes)
	case "delete":
		r, err := c.DeleteKey(ctx, name, nil)
		if err != nil {
			return fmt.Errorf("key delete: %w", keyCmdErr(err))
		}
		fmt.Fprintf(stdout, "deleted %s (recoverable until %s)\n", name, r.ScheduledPurgeDate.UTC().Format(time.RFC3339))
	case "recover":
		r, err := c.RecoverDeletedKey(ctx, name, nil)
		if err != nil {
			return fmt.Errorf("key recover: %w", keyCmdErr(err))
		}
		printKID(r.Key.KID, r.Attributes)
	case "purge":
		if _, err := c.PurgeDeletedKey(ctx, name, nil); err != nil {
			return fmt.Errorf("key purge: %w", keyCmdErr(err))
		}
		fmt.Fprintf(stdout, "purged %s\n", name)
	default:
		fmt.Fprint(stderr, keyUsage)
		return fmt.Errorf("unknown key command %q", cmd)
	}
	return nil
}

// keyCmdErr shortens an azcore.ResponseError to status, code and message.
func keyCmdErr(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if re.RawResponse != nil {
			if b, rerr := runtime.Payload(re.RawResponse); rerr == nil && json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
				return fmt.Errorf("%d %s: %s", re.StatusCode, re.ErrorCode, e.Error.Message)
			}
		}
		return fmt.Errorf("%d %s", re.StatusCode, re.ErrorCode)
	}
	return err
}
