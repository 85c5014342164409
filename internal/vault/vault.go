package vault

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// AdminPrincipal is the principal whose token is written to
// {data}/admin-token on first start. It may call every operation, including
// the token, policy and audit endpoints; no policy applies to it.
const AdminPrincipal = "admin"

// DefaultAddr is the listen address used when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:8443"

// ChallengeResource is the resource named in the 401 challenge. It is Azure
// Key Vault's, so clients written for AKV accept the challenge; azkeys
// clients must set DisableChallengeResourceVerification because the vault's
// host is not under vault.azure.net.
const ChallengeResource = "https://vault.azure.net"

// Config configures a Vault. DataDir is required; every other field has a
// default.
type Config struct {
	// DataDir holds the state file, master key, audit log, CA and admin
	// token. It is created with mode 0700 when absent.
	DataDir string
	// Addr is the listen address for Listen and ListenAndServe
	// (default DefaultAddr).
	Addr string
	// URL is the vault's public base URL (e.g. https://vault.example:8443),
	// used in every kid. Default: https://{listen host}:{port}, with an
	// unspecified host replaced by 127.0.0.1.
	URL string
	// Logger receives operational logs (default: discard). Tokens and key
	// bytes are never logged.
	Logger *slog.Logger
	// Rand is the source of keys, versions and tokens (default crypto/rand).
	Rand io.Reader
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// CertFile and KeyFile name a PEM certificate and key to serve instead
	// of a certificate issued by the vault's own CA. Both or neither.
	CertFile, KeyFile string
	// PurgeProtection refuses purge of deleted keys; they are purged only
	// when their retention ends. Once enabled it stays enabled (as in AKV).
	PurgeProtection bool
	// RetentionDays is how long deleted keys stay recoverable, 7 to 90
	// (default 90).
	RetentionDays int
}

// Vault is the built-in key vault. Open it, then Serve or ListenAndServe.
// All methods are safe for concurrent use.
type Vault struct {
	dir       string
	log       *slog.Logger
	rand      io.Reader
	now       func() time.Time
	retention int
	addr      string
	certFile  string
	keyFile   string

	sealer *sealer
	ca     *certAuthority
	audit  *auditLog

	mu sync.RWMutex // guards st; writers hold it across the durable save
	st *state

	cacheMu sync.Mutex
	cache   map[string]any // name\x00version → *rsa.PrivateKey or []byte (oct)

	urlMu   sync.Mutex
	url     string
	servers []*http.Server
	closed  bool
}

// Open opens (or, on first start, initialises) the vault in cfg.DataDir:
// it creates the master key, the CA and the admin token when absent and logs
// the admin token's path. It does not listen.
func Open(ctx context.Context, cfg Config) (*Vault, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("vault: Config.DataDir is required")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("vault: CertFile and KeyFile must be given together")
	}
	if cfg.RetentionDays == 0 {
		cfg.RetentionDays = 90
	}
	if cfg.RetentionDays < 7 || cfg.RetentionDays > 90 {
		return nil, fmt.Errorf("vault: RetentionDays %d out of range 7..90", cfg.RetentionDays)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("vault: create data dir: %w", err)
	}
	v := &Vault{
		dir: cfg.DataDir, log: cfg.Logger, rand: cfg.Rand, now: cfg.Clock,
		retention: cfg.RetentionDays, addr: cfg.Addr, certFile: cfg.CertFile, keyFile: cfg.KeyFile,
		cache: map[string]any{}, url: strings.TrimRight(cfg.URL, "/"),
	}
	st, existed, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, masterKeyName)); existed && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("vault: %s exists but the master key file %s is missing; without it no key can be opened (restore it from backup)",
			filepath.Join(cfg.DataDir, stateFileName), filepath.Join(cfg.DataDir, masterKeyName))
	}
	master, created, err := loadOrCreateMasterKey(cfg.DataDir, cfg.Rand)
	if err != nil {
		return nil, err
	}
	if created {
		v.log.Info("vault: created master key", "path", filepath.Join(cfg.DataDir, masterKeyName))
	}
	if v.sealer, err = newSealer(master, cfg.Rand); err != nil {
		return nil, err
	}
	if err := v.checkSealed(st); err != nil {
		return nil, err
	}
	v.st = st
	if cfg.PurgeProtection && !st.PurgeProtection {
		if err := v.update(func(s *state) error { s.PurgeProtection = true; return nil }); err != nil {
			return nil, err
		}
	}
	if cfg.CertFile == "" {
		if v.ca, err = loadOrCreateCA(cfg.DataDir, cfg.Rand, cfg.Clock()); err != nil {
			return nil, err
		}
	}
	if v.audit, err = openAudit(filepath.Join(cfg.DataDir, auditFileName)); err != nil {
		return nil, err
	}
	if err := v.ensureAdminToken(); err != nil {
		v.audit.close()
		return nil, err
	}
	return v, nil
}

// checkSealed verifies that the master key opens one sealed item, so a
// wrong master key file fails at start, not at the first unwrap.
func (v *Vault) checkSealed(st *state) error {
	for _, k := range st.Keys {
		ver := k.current()
		if _, err := v.sealer.open(k.Name, ver.ID, ver.Sealed); err != nil {
			return fmt.Errorf("vault: key %s: %w (wrong master key file?)", k.Name, err)
		}
		return nil
	}
	return nil
}

func (v *Vault) ensureAdminToken() error {
	v.mu.RLock()
	has := false
	for _, t := range v.st.Tokens {
		if t.Principal == AdminPrincipal {
			has = true
			break
		}
	}
	v.mu.RUnlock()
	path := filepath.Join(v.dir, adminTokenName)
	if has {
		v.log.Info("vault: admin token file", "path", path)
		return nil
	}
	tok, hash, err := v.newToken()
	if err != nil {
		return err
	}
	// The file first: a crash before the state is saved leaves a file whose
	// token is unknown, and the next start replaces it.
	if err := writeFileAtomic(v.dir, adminTokenName, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	if err := v.update(func(s *state) error {
		s.Tokens[hash] = tokenRecord{Principal: AdminPrincipal, Created: v.now().Unix()}
		return nil
	}); err != nil {
		return err
	}
	v.log.Info("vault: wrote admin token", "path", path)
	return nil
}

// AdminTokenFile returns the path of the admin token file.
func (v *Vault) AdminTokenFile() string { return filepath.Join(v.dir, adminTokenName) }

// CAFile returns the path of the CA certificate clients should trust, or ""
// when the vault serves a user-supplied certificate.
func (v *Vault) CAFile() string {
	if v.ca == nil {
		return ""
	}
	return filepath.Join(v.dir, caCertName)
}

// URL returns the vault's base URL (no trailing slash). Before Listen or
// Serve it is derived from Config.Addr.
func (v *Vault) URL() string {
	v.urlMu.Lock()
	defer v.urlMu.Unlock()
	if v.url != "" {
		return v.url
	}
	return urlForAddr(v.addr)
}

func urlForAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "https://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// Listen binds Config.Addr and fixes the vault URL from the bound address
// (useful with port 0).
func (v *Vault) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", v.addr)
	if err != nil {
		return nil, fmt.Errorf("vault: listen on %s: %w", v.addr, err)
	}
	v.urlMu.Lock()
	if v.url == "" {
		v.url = urlForAddr(ln.Addr().String())
	}
	v.urlMu.Unlock()
	return ln, nil
}

// ListenAndServe is Listen followed by Serve.
func (v *Vault) ListenAndServe(ctx context.Context) error {
	ln, err := v.Listen()
	if err != nil {
		return err
	}
	return v.Serve(ctx, ln)
}

// Serve answers HTTPS requests on ln until ctx is done or Close is called,
// then shuts down gracefully and returns nil. The server certificate is the
// user-supplied one or is issued by the vault CA for the listen host.
func (v *Vault) Serve(ctx context.Context, ln net.Listener) error {
	v.urlMu.Lock()
	if v.closed {
		v.urlMu.Unlock()
		ln.Close()
		return errors.New("vault: closed")
	}
	if v.url == "" {
		v.url = urlForAddr(ln.Addr().String())
	}
	base := v.url
	v.urlMu.Unlock()
	var cert tls.Certificate
	var err error
	if v.certFile != "" {
		cert, err = tls.LoadX509KeyPair(v.certFile, v.keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("vault: load certificate: %w", err)
		}
	} else {
		host := ""
		if u, perr := urlHost(base); perr == nil {
			host = u
		}
		cert, err = v.ca.serverCert(host, v.rand, v.now())
		if err != nil {
			ln.Close()
			return err
		}
	}
	srv := &http.Server{
		Handler:           v.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(v.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	v.urlMu.Lock()
	v.servers = append(v.servers, srv)
	v.urlMu.Unlock()
	v.log.Info("vault: listening", "url", base, "ca", v.CAFile())
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		case <-done:
		}
	}()
	err = srv.ServeTLS(ln, "", "")
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("vault: serve: %w", err)
}

func urlHost(u string) (string, error) {
	rest, ok := strings.CutPrefix(u, "https://")
	if !ok {
		return "", errors.New("not https")
	}
	rest, _, _ = strings.Cut(rest, "/")
	host, _, err := net.SplitHostPort(rest)
	if err != nil {
		return rest, nil
	}
	return host, nil
}

// Close stops any servers and closes the audit log. Acknowledged changes
// are already durable; Close loses nothing.
func (v *Vault) Close() error {
	v.urlMu.Lock()
	v.closed = true
	srvs := v.servers
	v.servers = nil
	v.urlMu.Unlock()
	for _, s := range srvs {
		s.Close()
	}
	v.cacheMu.Lock()
	clear(v.cache)
	v.cacheMu.Unlock()
	return v.audit.close()
}

// update applies fn to a copy of the state, saves the copy durably, and
// only then makes it current.
func (v *Vault) update(fn func(s *state) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	next, err := v.st.clone()
	if err != nil {
		return err
	}
	if err := fn(next); err != nil {
		return err
	}
	if err := saveState(v.dir, next); err != nil {
		return err
	}
	v.st = next
	return nil
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// newToken returns a fresh bearer token and its hash.
func (v *Vault) newToken() (string, string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(v.rand, b); err != nil {
		return "", "", fmt.Errorf("vault: generate token: %w", err)
	}
	tok := "kvt1." + base64.RawURLEncoding.EncodeToString(b)
	return tok, tokenHash(tok), nil
}

// ErrInvalidPrincipal is returned for a principal name that is not 1 to 64
// characters of letters, digits, '.', '_' or '-' starting with a letter or digit.
var ErrInvalidPrincipal = errors.New("vault: invalid principal name")

// IssueToken creates a new bearer token for principal and returns it. Only
// its hash is stored; the token cannot be shown again. Earlier tokens of the
// principal stay valid. It grants no permissions by itself.
func (v *Vault) IssueToken(ctx context.Context, principal string) (string, error) {
	tok, err := v.issueToken(ctx, principal)
	v.auditLocal("token.create", principal, err)
	return tok, err
}

func (v *Vault) issueToken(ctx context.Context, principal string) (string, error) {
	if !principalRE.MatchString(principal) {
		return "", fmt.Errorf("%w: %q", ErrInvalidPrincipal, principal)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	tok, hash, err := v.newToken()
	if err != nil {
		return "", err
	}
	if err := v.update(func(s *state) error {
		s.Tokens[hash] = tokenRecord{Principal: principal, Created: v.now().Unix()}
		return nil
	}); err != nil {
		return "", err
	}
	return tok, nil
}

// RevokeTokens invalidates every token of principal and reports how many.
func (v *Vault) RevokeTokens(ctx context.Context, principal string) (int, error) {
	n, err := v.revokeTokens(ctx, principal)
	v.auditLocal("token.revoke", principal, err)
	return n, err
}

func (v *Vault) revokeTokens(ctx context.Context, principal string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := v.update(func(s *state) error {
		for h, t := range s.Tokens {
			if t.Principal == principal {
				delete(s.Tokens, h)
				n++
			}
		}
		return nil
	})
	return n, err
}

// SetPolicy grants principal exactly perms (see AllPermissions), replacing
// any earlier policy. An empty list leaves a policy that grants nothing.
func (v *Vault) SetPolicy(ctx context.Context, principal string, perms []string) error {
	err := v.setPolicy(ctx, principal, perms)
	v.auditLocal("policy.set", principal, err)
	return err
}

func (v *Vault) setPolicy(ctx context.Context, principal string, perms []string) error {
	if !principalRE.MatchString(principal) {
		return fmt.Errorf("%w: %q", ErrInvalidPrincipal, principal)
	}
	norm, err := normalizePermissions(perms)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return v.update(func(s *state) error { s.Policies[principal] = norm; return nil })
}

// RemovePolicy removes principal's policy; it reports whether one existed.
func (v *Vault) RemovePolicy(ctx context.Context, principal string) (bool, error) {
	existed, err := v.removePolicy(ctx, principal)
	v.auditLocal("policy.remove", principal, err)
	return existed, err
}

func (v *Vault) removePolicy(ctx context.Context, principal string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	existed := false
	err := v.update(func(s *state) error {
		_, existed = s.Policies[principal]
		delete(s.Policies, principal)
		return nil
	})
	return existed, err
}

// Policy is one principal's granted permissions.
type Policy struct {
	Principal   string   `json:"principal"`
	Permissions []string `json:"permissions"`
}

// Policies returns every policy, sorted by principal.
func (v *Vault) Policies() []Policy {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Policy, 0, len(v.st.Policies))
	for p, perms := range v.st.Policies {
		out = append(out, Policy{Principal: p, Permissions: append([]string{}, perms...)})
	}
	sortPolicies(out)
	return out
}

// Audit returns audit records at or after since, oldest first (at most limit;
// limit <= 0 means 10000).
func (v *Vault) Audit(ctx context.Context, since time.Time, limit int) ([]AuditRecord, error) {
	if limit <= 0 {
		limit = 10000
	}
	return v.audit.query(ctx, since, limit)
}

// material returns the unsealed key material of a version, caching it.
func (v *Vault) material(name string, ver *versionRecord) (any, error) {
	ck := name + "\x00" + ver.ID
	v.cacheMu.Lock()
	m, ok := v.cache[ck]
	v.cacheMu.Unlock()
	if ok {
		return m, nil
	}
	pt, err := v.sealer.open(name, ver.ID, ver.Sealed)
	if err != nil {
		return nil, err
	}
	if ver.isRSA() {
		k, err := x509.ParsePKCS8PrivateKey(pt)
		clear(pt)
		if err != nil {
			return nil, fmt.Errorf("vault: parse sealed RSA key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("vault: sealed key is not RSA")
		}
		m = rk
	} else {
		m = pt
	}
	v.cacheMu.Lock()
	v.cache[ck] = m
	v.cacheMu.Unlock()
	return m, nil
}

func (v *Vault) dropCache(name string) {
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	for k := range v.cache {
		if strings.HasPrefix(k, name+"\x00") {
			delete(v.cache, k)
		}
	}
}

// LocalPrincipal names the embedding process in audit records of calls made
// through the Go API (IssueToken, SetPolicy, ...) rather than over HTTPS.
const LocalPrincipal = "(local)"

func (v *Vault) auditLocal(op, principal string, err error) {
	rec := AuditRecord{Time: v.now().UTC(), Principal: LocalPrincipal, Operation: op, Key: principal, Result: "ok", Status: http.StatusOK}
	if err != nil {
		rec.Result, rec.Status = "error", http.StatusBadRequest
	}
	if aerr := v.audit.append(rec); aerr != nil {
		v.log.Error("vault: audit append failed", "err", aerr)
	}
}

// EnsureTokenFile returns a token for principal kept in the file at path:
// the file's token when it still authenticates as principal, otherwise a
// newly issued token written to path (mode 0600, atomically). kiln serve uses
// it to provision principal "kiln" once, on first start. It grants no
// permissions.
func (v *Vault) EnsureTokenFile(ctx context.Context, principal, path string) (token string, created bool, err error) {
	if b, rerr := os.ReadFile(path); rerr == nil {
		tok := strings.TrimSpace(string(b))
		v.mu.RLock()
		rec, ok := v.st.Tokens[tokenHash(tok)]
		v.mu.RUnlock()
		if ok && rec.Principal == principal {
			return tok, false, nil
		}
	} else if !errors.Is(rerr, fs.ErrNotExist) {
		return "", false, fmt.Errorf("vault: read token file: %w", rerr)
	}
	tok, err := v.IssueToken(ctx, principal)
	if err != nil {
		return "", false, err
	}
	if err := writeFileAtomic(filepath.Dir(path), filepath.Base(path), []byte(tok+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return tok, true, nil
}
