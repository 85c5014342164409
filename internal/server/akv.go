package server

import (
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/kilnhealth/kiln/internal/auditevent"
	"github.com/kilnhealth/kiln/internal/keys/akv"
	"github.com/kilnhealth/kiln/internal/vault"
)

type atomicRecorder = atomic.Pointer[auditevent.Recorder]

// AKVOptions configure the Azure Key Vault–protocol provider.
type AKVOptions struct {
	// Auth is the credential kind: "token" (default; a bearer token for the
	// built-in vault), "managed-identity", "client-secret",
	// "workload-identity" or "azure-cli" (real Azure Key Vault).
	Auth string
	// TokenFile holds the bearer token for Auth "token". Default: the token
	// Kiln provisioned for itself at the embedded vault ({data}/vault-token).
	TokenFile string
	// CAFile is an extra PEM CA to trust (e.g. a stand-alone built-in
	// vault's ca.pem). The system roots and the embedded vault's CA are
	// always trusted.
	CAFile string
	// TenantID, ClientID and ClientSecret for the Azure kinds (default from
	// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET).
	TenantID, ClientID, ClientSecret string
}

// akvProvider builds the Azure Key Vault–protocol provider, or nil when
// there is no credential to use (no embedded vault and no token file).
func akvProvider(o Options, v *vault.Vault) (*akv.Provider, error) {
	a := o.AKV
	if a.Auth == "" {
		a.Auth = string(akv.AuthToken)
	}
	if a.Auth == string(akv.AuthToken) && a.TokenFile == "" {
		if v == nil {
			return nil, nil
		}
		a.TokenFile = VaultTokenFile(o.DataDir)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	for _, f := range []string{a.CAFile, caFileOf(v)} {
		if f == "" {
			continue
		}
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("server: read CA %s: %w", f, err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server: %s holds no PEM certificate", f)
		}
	}
	auth := akv.Auth{Kind: akv.AuthKind(a.Auth), TenantID: orEnv(a.TenantID, "AZURE_TENANT_ID"),
		ClientID: orEnv(a.ClientID, "AZURE_CLIENT_ID"), ClientSecret: orEnv(a.ClientSecret, "AZURE_CLIENT_SECRET")}
	if auth.Kind == akv.AuthToken || auth.Kind == akv.AuthWorkloadIdentity {
		auth.TokenFile = a.TokenFile
	}
	p, err := akv.New(akv.Config{Auth: auth, RootCAs: roots, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("server: key vault provider: %w", err)
	}
	return p, nil
}

func caFileOf(v *vault.Vault) string {
	if v == nil {
		return ""
	}
	return v.CAFile()
}

func orEnv(v, name string) string {
	if v != "" {
		return v
	}
	return os.Getenv(name)
}
