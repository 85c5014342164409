package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/keys"
)

// KeyLister lists the keys of a vault that the service can see (the key
// picker). Optional.
type KeyLister interface {
	ListKeys(ctx context.Context, vaultURL string) ([]KeyInfo, error)
}

// KeyInfo is one entry of the key picker.
type KeyInfo struct {
	Name    string `json:"name"`
	KeyURI  string `json:"keyUri"`
	Enabled bool   `json:"enabled"`
	KeyType string `json:"kty,omitempty"`
}

// AuditReader returns recorded key events as FHIR AuditEvent JSON. Optional.
type AuditReader interface {
	AuditEvents(ctx context.Context, account string, since time.Time, limit int) ([]json.RawMessage, error)
}

// Pinger checks the store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config wires the management API.
type Config struct {
	Accounts  *accounts.Registry
	Keys      KeyLister   // optional
	Audit     AuditReader // optional
	Store     Pinger
	Logger    *slog.Logger
	PublicURL string // external origin; derived from the request when empty
	// FHIRPrefix is the FHIR mount path ("/fhir/").
	FHIRPrefix string
	// Metrics serves /metrics when set.
	Metrics http.Handler
}

// API serves /management/..., /health and /metrics.
type API struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New builds the management API.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FHIRPrefix == "" {
		cfg.FHIRPrefix = "/fhir/"
	}
	a := &API{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /management/accounts", a.list)
	a.mux.HandleFunc("GET /management/accounts/{name}", a.get)
	a.mux.HandleFunc("PUT /management/accounts/{name}", a.create)
	a.mux.HandleFunc("PATCH /management/accounts/{name}", a.patch)
	a.mux.HandleFunc("DELETE /management/accounts/{name}", a.delete)
	a.mux.HandleFunc("POST /management/accounts/{name}/encryption/check", a.check)
	a.mux.HandleFunc("GET /management/keys", a.keys)
	a.mux.HandleFunc("GET /management/audit", a.audit)
	a.mux.HandleFunc("GET /health", a.health)
	if cfg.Metrics != nil {
		a.mux.Handle("GET /metrics", cfg.Metrics)
	}
	a.mux.HandleFunc("/management/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, &apiError{status: 404, code: "NotFound", msg: "no management endpoint " + r.Method + " " + r.URL.Path})
	})
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Account is the JSON view of an account (DESIGN.md §5).
type Account struct {
	Name        string              `json:"name"`
	FHIRBaseURL string              `json:"fhirBaseUrl"`
	CreatedAt   time.Time           `json:"createdAt"`
	Status      string              `json:"status"`
	Encryption  accounts.Encryption `json:"encryption"`
}

func (a *API) view(r *http.Request, info accounts.Info) Account {
	return Account{Name: info.Name, FHIRBaseURL: a.origin(r) + a.cfg.FHIRPrefix + info.Name, CreatedAt: info.CreatedAt,
		Status: info.Status, Encryption: info.Encryption}
}

func (a *API) origin(r *http.Request) string {
	if a.cfg.PublicURL != "" {
		return strings.TrimRight(a.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	infos, err := a.cfg.Accounts.List(r.Context())
	if err != nil {
		a.writeError(w, err)
		return
	}
	out := struct {
		Value []Account `json:"value"`
	}{Value: []Account{}}
	for _, i := range infos {
		out.Value = append(out.Value, a.view(r, i))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	info, err := a.cfg.Accounts.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.view(r, info))
}

// accountRequest is the body of PUT and PATCH.
type accountRequest struct {
	Encryption *struct {
		KeySource *string `json:"keySource"`
		KeyURI    *string `json:"keyUri"`
	} `json:"encryption"`
}

func decodeBody(r *http.Request, v any, allowEmpty bool) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return &apiError{status: 400, code: "BadRequest", msg: "reading the body: " + err.Error()}
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if allowEmpty {
			return nil
		}
		return &apiError{status: 400, code: "BadRequest", msg: "the request body is empty"}
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{status: 400, code: "BadRequest", msg: "the body is not a valid account document: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &apiError{status: 400, code: "BadRequest", msg: "the body has data after the account document"}
	}
	return nil
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	var req accountRequest
	if err := decodeBody(r, &req, true); err != nil {
		a.writeError(w, err)
		return
	}
	spec := accounts.Spec{Name: r.PathValue("name")}
	if e := req.Encryption; e != nil {
		if e.KeySource != nil {
			spec.KeySource = accounts.KeySource(*e.KeySource)
		}
		if e.KeyURI != nil {
			spec.KeyURI = *e.KeyURI
		}
	}
	info, err := a.cfg.Accounts.Create(r.Context(), spec)
	if err != nil {
		a.writeError(w, err)
		return
	}
	v := a.view(r, info)
	w.Header().Set("Location", "/management/accounts/"+info.Name)
	writeJSON(w, http.StatusCreated, v)
}

func (a *API) patch(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req accountRequest
	if err := decodeBody(r, &req, false); err != nil {
		a.writeError(w, err)
		return
	}
	info, err := a.cfg.Accounts.Get(r.Context(), name)
	if err != nil {
		a.writeError(w, err)
		return
	}
	e := req.Encryption
	if e == nil {
		writeJSON(w, http.StatusOK, a.view(r, info))
		return
	}
	if e.KeySource != nil && accounts.KeySource(*e.KeySource) != info.Encryption.KeySource {
		a.writeError(w, fmt.Errorf("%w: keySource is fixed when the account is created (it is %q)", accounts.ErrImmutable, info.Encryption.KeySource))
		return
	}
	if e.KeyURI != nil && *e.KeyURI != info.Encryption.KeyURI {
		if info, err = a.cfg.Accounts.ChangeKey(r.Context(), name, *e.KeyURI); err != nil {
			a.writeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, a.view(r, info))
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Accounts.Delete(r.Context(), r.PathValue("name")); err != nil {
		a.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) check(w http.ResponseWriter, r *http.Request) {
	info, err := a.cfg.Accounts.Check(r.Context(), r.PathValue("name"))
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.view(r, info))
}

func (a *API) keys(w http.ResponseWriter, r *http.Request) {
	vault := r.URL.Query().Get("vault")
	if vault == "" {
		a.writeError(w, &apiError{status: 400, code: "BadRequest", msg: "give the vault URL: /management/keys?vault=https://…"})
		return
	}
	if a.cfg.Keys == nil {
		a.writeError(w, &apiError{status: 400, code: "NotSupported", msg: "no key-vault client is configured"})
		return
	}
	ks, err := a.cfg.Keys.ListKeys(r.Context(), vault)
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Value []KeyInfo `json:"value"`
	}{Value: append([]KeyInfo{}, ks...)})
}

func (a *API) audit(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Audit == nil {
		a.writeError(w, &apiError{status: 400, code: "NotSupported", msg: "audit is not configured"})
		return
	}
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			a.writeError(w, &apiError{status: 400, code: "BadRequest", msg: "since must be an RFC 3339 time"})
			return
		}
		since = t
	}
	evs, err := a.cfg.Audit.AuditEvents(r.Context(), q.Get("account"), since, 1000)
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Value []json.RawMessage `json:"value"`
	}{Value: append([]json.RawMessage{}, evs...)})
}

// Health is the /health document.
type Health struct {
	Status   string                   `json:"status"` // Healthy, Degraded, Unhealthy
	Store    string                   `json:"store"`
	Accounts map[string]AccountHealth `json:"accounts,omitempty"`
}

// AccountHealth names an account whose key access is lost.
type AccountHealth struct {
	KeyStatus accounts.KeyStatus `json:"keyStatus"`
	Reason    string             `json:"keyStatusReason"`
	Message   string             `json:"message"`
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "Healthy", Store: "ok"}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if a.cfg.Store != nil {
		if err := a.cfg.Store.Ping(ctx); err != nil {
			h.Status, h.Store = "Unhealthy", err.Error()
			writeJSON(w, http.StatusServiceUnavailable, h)
			return
		}
	}
	for name, l := range a.cfg.Accounts.Degraded() {
		if h.Accounts == nil {
			h.Accounts = map[string]AccountHealth{}
		}
		h.Status = "Degraded"
		h.Accounts[name] = AccountHealth{KeyStatus: l.Status, Reason: l.Reason, Message: l.Message}
	}
	writeJSON(w, http.StatusOK, h)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError is a management error with its status and code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// classify maps errors to statuses: the one place that does.
func classify(err error) *apiError {
	var ae *apiError
	var ke *accounts.KeyError
	var lost *accounts.AccessLostError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, accounts.ErrNotFound):
		return &apiError{404, "AccountNotFound", "no such account"}
	case errors.Is(err, accounts.ErrExists):
		return &apiError{409, "AccountExists", "an account by that name already exists"}
	case errors.Is(err, accounts.ErrImmutable):
		return &apiError{409, "Immutable", err.Error()}
	case errors.Is(err, accounts.ErrReserved):
		return &apiError{400, "ReservedName", err.Error()}
	case errors.As(err, &ke):
		return &apiError{400, "Key" + ke.Reason, keyMessage(ke)}
	case errors.As(err, &lost):
		return &apiError{409, "KeyAccessLost", lost.Message}
	case errors.Is(err, keys.ErrPermissionDenied):
		return &apiError{403, "VaultForbidden", "Kiln's principal may not do this at the vault (for the key picker it needs the list permission): " + err.Error()}
	case errors.Is(err, keys.ErrInvalidURI), errors.Is(err, keys.ErrUnsupported):
		return &apiError{400, "BadVaultUrl", err.Error()}
	case errors.Is(err, keys.ErrUnreachable), errors.Is(err, keys.ErrUnauthenticated):
		return &apiError{502, "VaultUnavailable", err.Error()}
	case errors.Is(err, accounts.ErrInvalid):
		return &apiError{400, "BadRequest", err.Error()}
	}
	return &apiError{500, "InternalError", "internal error; see the server log"}
}

// keyMessage says plainly what is missing for a key to be usable.
func keyMessage(ke *accounts.KeyError) string {
	what := map[string]string{
		accounts.ReasonKeyNotFound:      "the key was not found in the vault",
		accounts.ReasonPermissionDenied: "Kiln's principal lacks a permission on the key (it needs get, wrapKey and unwrapKey)",
		accounts.ReasonKeyDisabled:      "the key is disabled",
		accounts.ReasonUnreachable:      "the key vault is unreachable",
		accounts.ReasonUnauthenticated:  "the key vault refused Kiln's credentials",
		accounts.ReasonUnsupported:      "no key provider handles this key URI (use https://{vault}/keys/{name}[/{version}], pkcs11:… or arn:aws:kms:…)",
		accounts.ReasonInvalidURI:       "the key URI is malformed",
		accounts.ReasonUnwrapFailed:     "a wrap/unwrap round trip with the key failed",
	}[ke.Reason]
	if what == "" {
		what = "the key cannot be used"
	}
	return fmt.Sprintf("key %s is not usable: %s (%v)", ke.KeyURI, what, ke.Err)
}

func (a *API) writeError(w http.ResponseWriter, err error) {
	e := classify(err)
	if e.status >= 500 {
		a.log.Error("management request failed", "err", err)
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]string{"code": e.code, "message": e.msg}})
}
