package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
)

type serveFlags struct {
	addr             string
	data             string
	store            string
	keyCheckInterval time.Duration
	unreachableGrace time.Duration
	vaultAddr        string
	publicURL        string
	logLevel         string
	synchronous      string
	akv              server.AKVOptions
	maxBundleEntries int
	maxBundleBytes   int64
	gcPercent        int
}

// defaultGCPercent is --gc-percent's default (Go's own is 100).
const defaultGCPercent = 400

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("kiln serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address HOST:PORT")
	fs.StringVar(&f.data, "data", "./kiln-data", "data directory")
	fs.StringVar(&f.store, "store", "", "store URL: postgres://… for PostgreSQL; default SQLite in the data directory")
	fs.DurationVar(&f.keyCheckInterval, "key-check-interval", 30*time.Second, "how often each customer-managed key is probed (>= 1s)")
	fs.DurationVar(&f.unreachableGrace, "key-unreachable-grace", 0, "how long a key vault may be unreachable before accounts become Unavailable (0: at the first failed check)")
	fs.StringVar(&f.vaultAddr, "vault-addr", "127.0.0.1:8443", "listen address of the embedded key vault, or 'off'")
	fs.StringVar(&f.publicURL, "public-url", "", "external origin used in links, e.g. https://fhir.example.com (default: from each request)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.synchronous, "sqlite-synchronous", "FULL", "SQLite durability: FULL (survives power loss) or NORMAL (survives a process crash)")
	fs.StringVar(&f.akv.Auth, "akv-auth", "token", "credential for Azure Key Vault–protocol keys: token (built-in vault), managed-identity, client-secret, workload-identity or azure-cli")
	fs.StringVar(&f.akv.TokenFile, "akv-token-file", "", "bearer token file for --akv-auth=token (default: Kiln's own token at the embedded vault, {data}/vault-token)")
	fs.StringVar(&f.akv.CAFile, "akv-ca", "", "extra PEM CA to trust for key vault TLS, e.g. a stand-alone kiln vault's ca.pem")
	fs.IntVar(&f.maxBundleEntries, "max-bundle-entries", 0, "most entries in one batch or transaction Bundle (0: the default, 10000)")
	fs.Int64Var(&f.maxBundleBytes, "max-bundle-bytes", 0, "largest Bundle request body in bytes (0: the default, 64 MiB)")
	fs.IntVar(&f.gcPercent, "gc-percent", defaultGCPercent, "Go garbage collector target (GOGC): heap growth allowed between collections, in percent of the live heap; the GOGC environment variable, when set, wins")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// Ingest allocates a lot of short-lived memory (decoded resources,
		// token batches): collecting less often saves 20–25% of the CPU of a
		// bulk load for about 1.5x the peak memory (docs/benchmarks.md).
		debug.SetGCPercent(f.gcPercent)
	}
	if f.keyCheckInterval < time.Second {
		return errors.New("--key-check-interval must be at least 1s")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv, err := server.New(ctx, server.Options{
		DataDir: f.data, Store: f.store, KeyCheckInterval: f.keyCheckInterval, UnreachableGrace: f.unreachableGrace,
		VaultAddr: f.vaultAddr, PublicURL: f.publicURL, SQLiteSync: f.synchronous, AKV: f.akv, Version: version, Logger: log,
		MaxBundleEntries: f.maxBundleEntries, MaxBundleBytes: f.maxBundleBytes,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "Kiln %s listening on %s\n", version, base)
	fmt.Fprintf(stdout, "  FHIR:        %s/fhir/%s/metadata\n", base, server.DefaultAccount)
	fmt.Fprintf(stdout, "  management:  %s/management/accounts\n", base)
	fmt.Fprintf(stdout, "  health:      %s/health\n", base)
	if srv.Vault != nil {
		fmt.Fprintf(stdout, "  key vault:   %s (CA %s, admin token %s)\n", srv.Vault.URL(), srv.Vault.CAFile(), srv.Vault.AdminTokenFile())
	}
	hs := &http.Server{
		Handler:           srv.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
