package akv

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/keys"
)

// ProviderName is recorded in keys.Wrapped.Provider.
const ProviderName = "akv"

// Wrapping algorithms by key type.
const (
	AlgRSA = "RSA-OAEP-256"
	AlgOct = "A256KW"
)

// Config configures the provider. Auth is required; the rest has defaults.
type Config struct {
	// Auth selects how the provider authenticates to vaults.
	Auth Auth
	// RootCAs are the CAs trusted for vault TLS. Nil: CAFile, else the
	// system roots.
	RootCAs *x509.CertPool
	// CAFile is a PEM file of CAs to trust (e.g. the built-in vault's
	// {data}/vault/ca.pem). Ignored when RootCAs is set.
	CAFile string
	// Timeout bounds each Wrap, Unwrap or Probe, retries included
	// (default 15s).
	Timeout time.Duration
	// TryTimeout bounds each HTTP attempt (default 5s).
	TryTimeout time.Duration
	// MaxRetries is the number of retries after a failed attempt on
	// throttling, 5xx or transport errors (default 1; negative: none).
	MaxRetries int
	// Rand is the source of probe secrets (default crypto/rand).
	Rand io.Reader
	// Logger receives debug logs (default: discard).
	Logger *slog.Logger
	// Clock returns the current time, used to check a key's nbf and exp
	// (default time.Now).
	Clock func() time.Time
}

// Provider opens AKV-protocol keys. It is safe for concurrent use.
type Provider struct {
	cfg    Config
	cred   azcore.TokenCredential
	verify bool // verify the challenge resource (off for static tokens)
	http   *http.Client

	mu      sync.Mutex
	clients map[string]*azkeys.Client // by vault base URL
}

// New returns a provider. It builds the credential and HTTP client but
// makes no network call.
func New(cfg Config) (*Provider, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.TryTimeout <= 0 {
		cfg.TryTimeout = 5 * time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 1
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	roots := cfg.RootCAs
	if roots == nil && cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("akv: read CA file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("akv: CA file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.TryTimeout,
		ResponseHeaderTimeout: cfg.TryTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	hc := &http.Client{Transport: tr}
	cred, static, err := cfg.Auth.credential(hc)
	if err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, cred: cred, verify: !static && !cfg.Auth.DisableChallengeResourceVerification, http: hc, clients: map[string]*azkeys.Client{}}, nil
}

// Name implements keys.Provider.
func (p *Provider) Name() string { return ProviderName }

// Supports implements keys.Provider: https URIs whose path starts /keys/.
func (p *Provider) Supports(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.Scheme == "https" && u.Host != "" && strings.HasPrefix(u.Path, "/keys/")
}

// KeyURI is a parsed AKV key URI.
type KeyURI struct {
	Vault   string // https://HOST[:PORT]
	Name    string
	Version string // "" for versionless
}

// ID returns the versionless key id, Vault/keys/Name.
func (k KeyURI) ID() string { return k.Vault + "/keys/" + k.Name }

// String returns the URI in canonical form.
func (k KeyURI) String() string {
	if k.Version == "" {
		return k.ID()
	}
	return k.ID() + "/" + k.Version
}

var (
	nameRE    = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)
)

// ParseURI parses https://HOST[:PORT]/keys/NAME[/VERSION]. Query, fragment
// and user info are refused; the host is lower-cased.
func ParseURI(uri string) (KeyURI, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return KeyURI{}, fmt.Errorf("akv: parse key uri: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return KeyURI{}, errors.New("akv: key uri must be https://HOST[:PORT]/keys/NAME[/VERSION]")
	}
	if u.RawPath != "" {
		return KeyURI{}, errors.New("akv: key uri must not contain escaped characters")
	}
	parts := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
	if len(parts) < 3 || len(parts) > 4 || parts[0] != "" || parts[1] != "keys" {
		return KeyURI{}, errors.New("akv: key uri path must be /keys/NAME[/VERSION]")
	}
	k := KeyURI{Vault: "https://" + strings.ToLower(u.Host), Name: parts[2]}
	if !nameRE.MatchString(k.Name) {
		return KeyURI{}, errors.New("akv: key name must be 1 to 127 letters, digits or dashes")
	}
	if len(parts) == 4 {
		k.Version = parts[3]
		if !versionRE.MatchString(k.Version) {
			return KeyURI{}, errors.New("akv: key version must be letters and digits")
		}
	}
	return k, nil
}

func (p *Provider) client(vaultURL string) (*azkeys.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[vaultURL]; ok {
		return c, nil
	}
	c, err := azkeys.NewClient(vaultURL, p.cred, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: p.http,
			Retry: policy.RetryOptions{
				MaxRetries:    int32(p.cfg.MaxRetries),
				TryTimeout:    p.cfg.TryTimeout,
				RetryDelay:    200 * time.Millisecond,
				MaxRetryDelay: 2 * time.Second,
			},
			Telemetry: policy.TelemetryOptions{Disabled: true},
		},
		DisableChallengeResourceVerification: !p.verify,
	})
	if err != nil {
		return nil, fmt.Errorf("akv: client for %s: %w", vaultURL, err)
	}
	p.clients[vaultURL] = c
	return c, nil
}

// Open implements keys.Provider. It validates the URI and makes no
// network call.
func (p *Provider) Open(ctx context.Context, uri string) (keys.Key, error) {
	k, err := ParseURI(uri)
	if err != nil {
		return nil, &keys.Error{Op: "open", KeyURI: uri, Err: keys.ErrInvalidURI, Detail: strings.TrimPrefix(err.Error(), "akv: ")}
	}
	c, err := p.client(k.Vault)
	if err != nil {
		return nil, &keys.Error{Op: "open", KeyURI: uri, Err: keys.ErrInvalidURI, Detail: err.Error()}
	}
	return &key{p: p, c: c, uri: uri, k: k}, nil
}

type key struct {
	p   *Provider
	c   *azkeys.Client
	uri string
	k   KeyURI
}

func (k *key) URI() string { return k.uri }

// resolve reads the key (pinned version, or current) and checks that it is
// usable now. It returns the version and the wrapping algorithm.
func (k *key) resolve(ctx context.Context, op string) (string, string, error) {
	r, err := k.c.GetKey(ctx, k.k.Name, k.k.Version, nil)
	if err != nil {
		return "", "", k.fail(ctx, op, err)
	}
	if r.Key == nil || r.Key.KID == nil || r.Key.Kty == nil {
		return "", "", keys.Errorf(op, k.uri, keys.ErrUnreachable, "vault answered a key without kid or kty")
	}
	version := r.Key.KID.Version()
	if version == "" {
		return "", "", keys.Errorf(op, k.uri, keys.ErrUnreachable, "vault answered a kid without a version")
	}
	if a := r.Attributes; a != nil {
		now := k.p.cfg.Clock()
		switch {
		case a.Enabled != nil && !*a.Enabled:
			return "", "", keys.Errorf(op, k.uri, keys.ErrKeyDisabled, "version %s is disabled", version)
		case a.NotBefore != nil && now.Before(*a.NotBefore):
			return "", "", keys.Errorf(op, k.uri, keys.ErrKeyDisabled, "version %s is not valid before %s", version, a.NotBefore.UTC().Format(time.RFC3339))
		case a.Expires != nil && !now.Before(*a.Expires):
			return "", "", keys.Errorf(op, k.uri, keys.ErrKeyDisabled, "version %s expired at %s", version, a.Expires.UTC().Format(time.RFC3339))
		}
	}
	switch *r.Key.Kty {
	case azkeys.KeyTypeRSA, azkeys.KeyTypeRSAHSM:
		return version, AlgRSA, nil
	case azkeys.KeyTypeOct, azkeys.KeyTypeOctHSM:
		return version, AlgOct, nil
	}
	return "", "", keys.Errorf(op, k.uri, keys.ErrUnsupported, "key type %s cannot wrap (want RSA or oct)", *r.Key.Kty)
}

// Wrap implements keys.Key.
func (k *key) Wrap(ctx context.Context, secret []byte) (keys.Wrapped, error) {
	ctx, cancel := context.WithTimeout(ctx, k.p.cfg.Timeout)
	defer cancel()
	version, alg, err := k.resolve(ctx, "wrap")
	if err != nil {
		return keys.Wrapped{}, err
	}
	return k.wrap(ctx, "wrap", version, alg, secret)
}

func (k *key) wrap(ctx context.Context, op, version, alg string, secret []byte) (keys.Wrapped, error) {
	r, err := k.c.WrapKey(ctx, k.k.Name, version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithm(alg)), Value: secret}, nil)
	if err != nil {
		return keys.Wrapped{}, k.fail(ctx, op, err)
	}
	if r.KID == nil || r.KID.Version() != version || len(r.Result) == 0 {
		return keys.Wrapped{}, keys.Errorf(op, k.uri, keys.ErrUnreachable, "vault answered wrap without the requested version")
	}
	return keys.Wrapped{Provider: ProviderName, KeyID: k.k.ID(), Version: version, Alg: alg, Ciphertext: r.Result}, nil
}

// Unwrap implements keys.Key.
func (k *key) Unwrap(ctx context.Context, w keys.Wrapped) ([]byte, error) {
	if w.Provider != ProviderName || w.KeyID != k.k.ID() {
		return nil, keys.Errorf("unwrap", k.uri, keys.ErrUnwrapFailed, "wrapped under %s key %s, not this key", w.Provider, w.KeyID)
	}
	if w.Version == "" || !versionRE.MatchString(w.Version) || (w.Alg != AlgRSA && w.Alg != AlgOct && w.Alg != "RSA-OAEP") || len(w.Ciphertext) == 0 {
		return nil, keys.Errorf("unwrap", k.uri, keys.ErrUnwrapFailed, "wrapped value lacks a valid version, algorithm or ciphertext")
	}
	ctx, cancel := context.WithTimeout(ctx, k.p.cfg.Timeout)
	defer cancel()
	return k.unwrap(ctx, "unwrap", w)
}

func (k *key) unwrap(ctx context.Context, op string, w keys.Wrapped) ([]byte, error) {
	r, err := k.c.UnwrapKey(ctx, k.k.Name, w.Version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithm(w.Alg)), Value: w.Ciphertext}, nil)
	if err != nil {
		return nil, k.fail(ctx, op, err)
	}
	if len(r.Result) == 0 {
		return nil, keys.Errorf(op, k.uri, keys.ErrUnwrapFailed, "vault answered an empty unwrap")
	}
	return r.Result, nil
}

// Probe implements keys.Key: get the key (pinned or current version), then
// wrap and unwrap a random 32-byte probe with that version.
func (k *key) Probe(ctx context.Context) (keys.ProbeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, k.p.cfg.Timeout)
	defer cancel()
	version, alg, err := k.resolve(ctx, "probe")
	if err != nil {
		return keys.ProbeResult{}, err
	}
	probe := make([]byte, 32)
	if _, err := io.ReadFull(k.p.cfg.Rand, probe); err != nil {
		return keys.ProbeResult{}, &keys.Error{Op: "probe", KeyURI: k.uri, Err: keys.ErrUnsupported, Detail: "no randomness: " + err.Error()}
	}
	w, err := k.wrap(ctx, "probe", version, alg, probe)
	if err != nil {
		return keys.ProbeResult{}, err
	}
	got, err := k.unwrap(ctx, "probe", w)
	if err != nil {
		return keys.ProbeResult{}, err
	}
	if subtle.ConstantTimeCompare(got, probe) != 1 {
		return keys.ProbeResult{}, keys.Errorf("probe", k.uri, keys.ErrUnwrapFailed, "probe did not round-trip")
	}
	return keys.ProbeResult{Version: version}, nil
}
