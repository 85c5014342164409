// Package server wires Kiln's parts into one running service: the store,
// the key providers and the embedded vault, the account registry and its
// key monitor, the resource service, the FHIR API and the management API.
// cmd/kiln calls it after parsing flags; integration tests call it to run
// the real service in-process.
//
// It holds no behaviour of its own beyond construction, bootstrap of the
// built-in accounts, and orderly shutdown.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/auditevent"
	"github.com/kilnhealth/kiln/internal/bundle"
	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/manage"
	"github.com/kilnhealth/kiln/internal/metrics"
	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/rest"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
	"github.com/kilnhealth/kiln/internal/vault"
)

// Names of the built-in accounts and keys.
const (
	SystemAccount  = "system"
	DefaultAccount = "default"
	ServiceKeyURI  = "local:service"
	VaultPrincipal = "kiln"
)

// Options configure a server. Zero values take the documented defaults.
type Options struct {
	DataDir          string        // required
	Store            string        // "" (SQLite in DataDir), "sqlite:PATH" or "postgres://…"
	KeyCheckInterval time.Duration // default 30s
	UnreachableGrace time.Duration
	VaultAddr        string // embedded vault listen address; "off" disables; "" means 127.0.0.1:8443
	PublicURL        string
	SQLiteSync       string // FULL (default) or NORMAL
	AKV              AKVOptions
	// MaxBundleEntries and MaxBundleBytes bound batch/transaction Bundles
	// (0: bundle.DefaultMaxEntries, bundle.DefaultMaxBodyBytes).
	MaxBundleEntries int
	MaxBundleBytes   int64
	Version          string
	Logger           *slog.Logger
}

// Server is a wired Kiln. Handler serves /fhir/, /management/, /health and /metrics.
type Server struct {
	Handler   http.Handler
	Store     store.Store
	Accounts  *accounts.Registry
	Resources *resources.Service
	Model     *fhir.Model
	Vault     *vault.Vault // nil when the embedded vault is off
	Keys      *keys.Registry

	audit *auditevent.Recorder
	stop  context.CancelFunc
}

// Close stops the monitor, flushes audit events and closes the vault and store.
func (s *Server) Close() {
	s.stop()
	if s.audit != nil {
		s.audit.Close()
	}
	if s.Vault != nil {
		s.Vault.Close()
	}
	s.Store.Close()
}

// New builds and starts a server (monitor and embedded vault included). It
// does not listen for FHIR traffic: serve Handler yourself.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.DataDir == "" {
		return nil, errors.New("server: DataDir is required")
	}
	if o.KeyCheckInterval == 0 {
		o.KeyCheckInterval = 30 * time.Second
	}
	if o.VaultAddr == "" {
		o.VaultAddr = "127.0.0.1:8443"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: create data directory: %w", err)
	}
	st, err := openStore(ctx, o)
	if err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s := &Server{Store: st, stop: stop}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	providers := []keys.Provider{keys.NewLocal(filepath.Join(o.DataDir, "keys"), rand.Reader)}
	if o.VaultAddr != "off" {
		v, err := startVault(bg, o, log)
		if err != nil {
			return nil, err
		}
		s.Vault = v
	}
	akvClient, err := akvProvider(o, s.Vault)
	if err != nil {
		return nil, err
	}
	if akvClient != nil {
		providers = append(providers, akvClient)
	}
	s.Keys = keys.NewRegistry(providers...)

	if s.Model, err = fhir.NewModel(); err != nil {
		return nil, err
	}
	codec, err := seal.NewCodec()
	if err != nil {
		return nil, err
	}
	sink := &auditSink{}
	m := metrics.New()
	reg, err := accounts.New(accounts.Config{
		Store: st, Keys: s.Keys, ServiceKeyURI: ServiceKeyURI, Codec: codec, Rand: rand.Reader,
		Logger: log, Audit: sink, Observer: m, UnreachableGrace: o.UnreachableGrace,
		Reserved: []string{SystemAccount, "management", "metadata", "health", "admin"},
	})
	if err != nil {
		return nil, err
	}
	s.Accounts = reg
	params, err := searchparam.Load()
	if err != nil {
		return nil, err
	}
	indexer, err := search.NewIndexer(params, s.Model)
	if err != nil {
		return nil, err
	}
	s.Resources, err = resources.New(resources.Config{Store: st, Accounts: reg, Model: s.Model, Indexer: indexer, Rand: rand.Reader, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := bootstrapAccounts(ctx, reg, st); err != nil {
		return nil, err
	}
	// Fail fast when this node's service key cannot open the accounts (a
	// node started without the cluster's key file would otherwise answer 500
	// for every account).
	if _, err := reg.Keys(ctx, SystemAccount); err != nil {
		return nil, fmt.Errorf("server: the service key %s cannot unwrap the system account's key; every node sharing a store needs the same %s: %w",
			ServiceKeyURI, filepath.Join(o.DataDir, "keys", "service.key"), err)
	}
	s.audit = auditevent.New(s.Resources, st, SystemAccount, log)
	sink.set(s.audit)
	if _, err := reg.List(ctx); err != nil { // load every account, so health sees them all
		return nil, err
	}
	go reg.RunMonitor(bg, o.KeyCheckInterval)
	if sub, ok := st.(accounts.AccountSubscriber); ok {
		if err := reg.Follow(bg, sub); err != nil {
			log.Warn("account change notifications unavailable; other nodes' key status changes arrive with the key monitor's polling", "err", err)
		}
	}

	searcher, err := search.New(search.Config{Store: st, Resources: s.Resources, Indexer: indexer, Model: s.Model, Logger: log})
	if err != nil {
		return nil, err
	}
	var fhirAPI *rest.API
	bundles, err := bundle.New(bundle.Config{
		Resources: s.Resources, Resolver: searcher, Locker: st, PublicURL: o.PublicURL, Logger: log,
		MaxEntries: o.MaxBundleEntries, MaxBodyBytes: o.MaxBundleBytes,
		// GET entries are answered by the FHIR API itself.
		Reads: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fhirAPI.ServeHTTP(w, r) }),
	})
	if err != nil {
		return nil, err
	}
	fhirAPI = rest.New(rest.Config{Resources: s.Resources, Model: s.Model, Logger: log, PublicURL: o.PublicURL, Version: o.Version, Bundles: bundles, Searcher: searcher,
		Conditional: bundles, ReadOnlyAccounts: []string{SystemAccount}})
	mgmt := manage.New(manage.Config{Accounts: reg, Keys: keyPicker{p: akvClient}, Audit: s.audit, Store: st, Logger: log, PublicURL: o.PublicURL, Metrics: m.Handler()})
	mux := http.NewServeMux()
	mux.Handle(rest.Prefix, m.Middleware("fhir", fhirAPI))
	mux.Handle("/management/", m.Middleware("management", mgmt))
	mux.Handle("/health", mgmt)
	mux.Handle("/metrics", mgmt)
	s.Handler = mux
	ok = true
	return s, nil
}

// auditSink forwards to the recorder once it exists (the recorder needs
// the resource service, which needs the registry, which needs a sink).
type auditSink struct {
	r atomicRecorder
}

func (a *auditSink) set(r *auditevent.Recorder) { a.r.Store(r) }

func (a *auditSink) Record(ctx context.Context, e accounts.Event) {
	if r := a.r.Load(); r != nil {
		r.Record(ctx, e)
	}
}

// bootstrapAccounts creates the system account always and the default
// account on first start (when no account exists yet).
func bootstrapAccounts(ctx context.Context, reg *accounts.Registry, st store.Store) error {
	all, err := st.ListAccounts(ctx)
	if err != nil {
		return fmt.Errorf("server: list accounts: %w", err)
	}
	hasSystem := false
	for _, a := range all {
		hasSystem = hasSystem || a.Name == SystemAccount
	}
	if hasSystem {
		return nil
	}
	if err := reg.CreateSystem(ctx, SystemAccount); err != nil {
		return fmt.Errorf("server: create system account: %w", err)
	}
	if len(all) == 0 {
		if _, err := reg.Create(ctx, accounts.Spec{Name: DefaultAccount}); err != nil && !errors.Is(err, accounts.ErrExists) {
			return fmt.Errorf("server: create default account: %w", err)
		}
	}
	return nil
}

func openStore(ctx context.Context, o Options) (store.Store, error) {
	switch {
	case strings.HasPrefix(o.Store, "postgres://"), strings.HasPrefix(o.Store, "postgresql://"):
		st, err := postgres.Open(ctx, o.Store, postgres.Options{})
		if err != nil {
			return nil, fmt.Errorf("server: open PostgreSQL store: %w", err)
		}
		return st, nil
	case o.Store == "" || strings.HasPrefix(o.Store, "sqlite:"):
		path := strings.TrimPrefix(o.Store, "sqlite:")
		if path == "" {
			path = filepath.Join(o.DataDir, "kiln.db")
		}
		// The data directory belongs to this process, so the store may keep
		// a coherent cache of sealed current versions for reads by id.
		st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: o.SQLiteSync, VersionCache: 20000})
		if err != nil {
			return nil, fmt.Errorf("server: open SQLite store: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("server: store %q: want postgres://… or sqlite:PATH", redactURL(o.Store))
}

// redactURL hides a password in a store URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if strings.Contains(s, "@") {
			return "(unparsable URL with credentials)"
		}
		return s
	}
	return u.Redacted()
}

// startVault opens the embedded vault in {data}/vault, serves it, and
// provisions principal kiln's token on first start (with no permissions).
func startVault(ctx context.Context, o Options, log *slog.Logger) (*vault.Vault, error) {
	v, err := vault.Open(ctx, vault.Config{DataDir: filepath.Join(o.DataDir, "vault"), Addr: o.VaultAddr, Logger: log.With("component", "vault"), Rand: rand.Reader})
	if err != nil {
		return nil, fmt.Errorf("server: open embedded vault: %w", err)
	}
	ln, err := v.Listen()
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("server: embedded vault (move it with --vault-addr, or turn it 'off'): %w", err)
	}
	go func() {
		if err := v.Serve(ctx, ln); err != nil {
			log.Error("embedded vault stopped", "err", err)
		}
	}()
	tokenFile := VaultTokenFile(o.DataDir)
	if _, created, err := v.EnsureTokenFile(ctx, VaultPrincipal, tokenFile); err != nil {
		v.Close()
		return nil, fmt.Errorf("server: provision vault token: %w", err)
	} else if created {
		log.Info("provisioned Kiln's vault principal (no permissions yet)", "principal", VaultPrincipal, "tokenFile", tokenFile)
	}
	return v, nil
}

// VaultTokenFile is where Kiln keeps its own token for the embedded vault.
func VaultTokenFile(dataDir string) string { return filepath.Join(dataDir, "vault-token") }
