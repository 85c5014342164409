package akv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// AuthKind selects a credential.
type AuthKind string

const (
	// AuthToken: a static bearer token (Auth.Token or Auth.TokenFile), as
	// issued by Kiln's built-in vault. The challenge resource is not
	// verified, since the built-in vault is not under vault.azure.net.
	AuthToken AuthKind = "token"
	// AuthManagedIdentity: the Azure managed identity of the host
	// (system-assigned, or user-assigned when Auth.ClientID is set).
	AuthManagedIdentity AuthKind = "managed-identity"
	// AuthClientSecret: an Entra ID app registration (Auth.TenantID,
	// Auth.ClientID, Auth.ClientSecret).
	AuthClientSecret AuthKind = "client-secret"
	// AuthWorkloadIdentity: Kubernetes workload identity federation
	// (Auth.TenantID, Auth.ClientID, Auth.TokenFile; each defaults to the
	// AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE
	// variables that the workload identity webhook sets).
	AuthWorkloadIdentity AuthKind = "workload-identity"
	// AuthAzureCLI: the account logged in with "az login" (development).
	AuthAzureCLI AuthKind = "azure-cli"
)

// Auth configures how the provider authenticates to vaults.
type Auth struct {
	Kind AuthKind
	// Token is the bearer token for AuthToken.
	Token string
	// TokenFile is, for AuthToken, a file holding the bearer token (re-read
	// every few minutes, so the token can be replaced without a restart);
	// for AuthWorkloadIdentity, the federated token file.
	TokenFile string
	// TenantID, ClientID and ClientSecret are the Entra ID parameters used by
	// the Azure kinds as documented on each kind.
	TenantID, ClientID, ClientSecret string
	// DisableChallengeResourceVerification turns off azkeys' check that the
	// challenge resource matches the vault host, for Azure kinds (it is always
	// off for AuthToken).
	DisableChallengeResourceVerification bool
}

// credential returns the TokenCredential and whether it is a static token.
func (a Auth) credential(hc *http.Client) (azcore.TokenCredential, bool, error) {
	opts := azcore.ClientOptions{Transport: hc}
	var cred azcore.TokenCredential
	var err error
	switch a.Kind {
	case AuthToken:
		if (a.Token == "") == (a.TokenFile == "") {
			return nil, false, errors.New("akv: auth token: give exactly one of Token and TokenFile")
		}
		if a.TokenFile != "" {
			if _, err := readToken(a.TokenFile); err != nil {
				return nil, false, err
			}
		}
		return &credentialMarker{inner: &staticToken{token: a.Token, file: a.TokenFile}}, true, nil
	case AuthManagedIdentity:
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if a.ClientID != "" {
			o.ID = azidentity.ClientID(a.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
	case AuthClientSecret:
		if a.TenantID == "" || a.ClientID == "" || a.ClientSecret == "" {
			return nil, false, errors.New("akv: auth client-secret needs TenantID, ClientID and ClientSecret")
		}
		cred, err = azidentity.NewClientSecretCredential(a.TenantID, a.ClientID, a.ClientSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
	case AuthWorkloadIdentity:
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, TenantID: a.TenantID, ClientID: a.ClientID, TokenFilePath: a.TokenFile,
		})
	case AuthAzureCLI:
		cred, err = azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: a.TenantID})
	case "":
		return nil, false, errors.New("akv: Auth.Kind is required (token, managed-identity, client-secret, workload-identity, azure-cli)")
	default:
		return nil, false, fmt.Errorf("akv: unknown auth kind %q", a.Kind)
	}
	if err != nil {
		return nil, false, fmt.Errorf("akv: %s credential: %w", a.Kind, err)
	}
	return &credentialMarker{inner: cred}, false, nil
}

// credentialError marks a failure to get a token, so classify can tell it
// from a transport failure.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return "akv: get token: " + e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

type credentialMarker struct{ inner azcore.TokenCredential }

func (c *credentialMarker) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	t, err := c.inner.GetToken(ctx, o)
	if err != nil {
		return t, &credentialError{err: err}
	}
	return t, nil
}

// staticToken serves a fixed token, or the content of a token file. The
// expiry it reports makes azcore ask again (and re-read the file) after a
// few minutes.
type staticToken struct {
	token string
	file  string
}

func (s *staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok := s.token
	if s.file != "" {
		var err error
		if tok, err = readToken(s.file); err != nil {
			return azcore.AccessToken{}, err
		}
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(10 * time.Minute), RefreshOn: time.Now().Add(5 * time.Minute)}, nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("akv: read token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("akv: token file %s is empty", path)
	}
	return tok, nil
}
