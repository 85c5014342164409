package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/resources"
)

// Searcher runs FHIR searches (package search implements it). With a nil
// Searcher the API answers search requests with 400 not-supported.
type Searcher interface {
	// Search answers a search over types (one type, or several/none for
	// system-level search) with query params, and returns the searchset
	// Bundle JSON. self is the URL of the request for the Bundle's links;
	// base is the account's FHIR base URL.
	Search(r *http.Request, account string, types []string, params url.Values, base string) ([]byte, error)
}

// ReindexRunner is implemented by a Searcher that can rebuild an account's
// search index: POST [base]/$reindex starts or resumes the job, GET reports
// its progress. Both answer a Parameters resource.
type ReindexRunner interface {
	StartReindex(ctx context.Context, account string) ([]byte, error)
	ReindexStatus(ctx context.Context, account string) ([]byte, error)
}

// reindex handles [base]/$reindex.
func (a *API) reindex(w http.ResponseWriter, r *http.Request, req *request) {
	rr, ok := a.cfg.Searcher.(ReindexRunner)
	if !ok {
		a.writeError(w, r, notSupported("$reindex is not supported"))
		return
	}
	var body []byte
	var err error
	switch r.Method {
	case http.MethodPost:
		body, err = rr.StartReindex(r.Context(), req.account)
	case http.MethodGet, http.MethodHead:
		body, err = rr.ReindexStatus(r.Context(), req.account)
	default:
		a.methodNotAllowed(w, r, "GET, POST")
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusAccepted
	}
	a.writeBody(w, r, status, body)
}

// CompartmentSearcher is implemented by a Searcher that supports
// compartment search: GET [base]/{compartment}/{id}/{type} (type "*" for
// every type in the compartment).
type CompartmentSearcher interface {
	SearchCompartment(r *http.Request, account, compartment, id, typ string, params url.Values, base string) ([]byte, error)
}

// compartmentSearch handles GET [base]/{compartment}/{id}/{type}.
func (a *API) compartmentSearch(w http.ResponseWriter, r *http.Request, req *request, compartment, id, typ string) {
	cs, ok := a.cfg.Searcher.(CompartmentSearcher)
	if !ok {
		a.writeError(w, r, notSupported("compartment search is not supported"))
		return
	}
	if err := a.res.CheckType(compartment); err != nil {
		a.writeError(w, r, err)
		return
	}
	if typ != "*" {
		if err := a.res.CheckType(typ); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if !validID(id) {
		a.writeError(w, r, badRequest("id", "%q is not a valid FHIR id", id))
		return
	}
	body, err := cs.SearchCompartment(r, req.account, compartment, id, typ, r.URL.Query(), req.base)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeBody(w, r, http.StatusOK, body)
}

// ConditionalRequest is one conditional interaction handed to a
// Conditional handler: Method is POST (with IfNoneExist), PUT or DELETE
// (URL "Type?search"), or PATCH (URL "Type/id" or "Type?search", Body a
// JSON Patch document).
type ConditionalRequest struct {
	Account     string
	Method      string
	URL         string // relative to the account base
	IfNoneExist string
	IfMatch     string
	Body        []byte
}

// Conditional serves conditional create, update, delete and patch (the
// bundle package implements it with a one-entry transaction, so both paths
// share search resolution and the conditional lock). It writes the whole
// response, errors included.
type Conditional interface {
	Conditional(w http.ResponseWriter, r *http.Request, c ConditionalRequest)
}

// Config wires an API.
type Config struct {
	Resources *resources.Service
	Model     *fhir.Model
	Searcher  Searcher // optional
	// Bundles handles POST to the account base (batch/transaction); optional.
	Bundles http.Handler
	// Conditional serves conditional interactions and PATCH; optional
	// (without it they are answered 400 not-supported).
	Conditional Conditional
	Logger      *slog.Logger
	// MaxBodyBytes bounds request bodies (default 16 MiB).
	MaxBodyBytes int64
	// PublicURL, when set, is the externally visible origin
	// (e.g. https://fhir.example.com); otherwise it is derived from the request.
	PublicURL string
	// Software name and version for the CapabilityStatement.
	Version string
	Now     func() time.Time
	// ReadOnlyAccounts can be read but not written by FHIR clients (the
	// system account, whose AuditEvents only the server writes).
	ReadOnlyAccounts []string
}

// API is the FHIR HTTP handler for /fhir/{account}/...
type API struct {
	cfg Config
	res *resources.Service
	log *slog.Logger
}

// New builds the API.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &API{cfg: cfg, res: cfg.Resources, log: cfg.Logger}
}

// Prefix is the path under which the API is mounted.
const Prefix = "/fhir/"

// request is a parsed FHIR request path.
type request struct {
	account string
	segs    []string // after the account
	base    string   // the account's FHIR base URL
	pretty  bool
}

// ServeHTTP routes /fhir/{account}/... to the interaction handlers.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, Prefix)
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 0 || parts[0] == "" {
		a.writeError(w, r, &httpError{status: 404, code: "not-found", detail: DetailAccountNotFound, msg: "The FHIR base is /fhir/{account}; no account was given."})
		return
	}
	req := &request{account: parts[0], segs: parts[1:]}
	req.base = a.origin(r) + Prefix + req.account
	if err := a.negotiate(r, req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if a.readOnly(req.account) && !(r.Method == http.MethodGet || r.Method == http.MethodHead ||
		r.Method == http.MethodPost && strings.HasSuffix(strings.TrimRight(r.URL.Path, "/"), "/_search")) {
		a.writeError(w, r, &httpError{status: 403, code: "forbidden", detail: DetailReadOnly,
			msg: "Account " + req.account + " is maintained by the server (it holds the key-event audit trail) and is read-only for clients."})
		return
	}
	// The account must exist and its keys be usable before anything else.
	if _, err := a.res.Keys(r.Context(), req.account); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.route(w, r, req)
}

func (a *API) readOnly(account string) bool {
	for _, n := range a.cfg.ReadOnlyAccounts {
		if n == account {
			return true
		}
	}
	return false
}

func (a *API) route(w http.ResponseWriter, r *http.Request, req *request) {
	s := req.segs
	m := r.Method
	switch {
	case len(s) == 0:
		switch m {
		case http.MethodGet:
			a.search(w, r, req, nil)
		case http.MethodPost:
			if a.cfg.Bundles == nil {
				a.writeError(w, r, notSupported("batch and transaction Bundles are not supported yet"))
				return
			}
			a.cfg.Bundles.ServeHTTP(w, r)
		default:
			a.methodNotAllowed(w, r, "GET, POST")
		}
	case len(s) == 1 && s[0] == "metadata":
		a.only(w, r, req, http.MethodGet, a.capabilities)
	case len(s) == 1 && s[0] == "_history":
		a.only(w, r, req, http.MethodGet, func(w http.ResponseWriter, r *http.Request, req *request) { a.history(w, r, req, "", "") })
	case len(s) == 1 && s[0] == "$reindex":
		a.reindex(w, r, req)
	case len(s) == 1 && s[0] == "_search":
		a.only(w, r, req, http.MethodPost, func(w http.ResponseWriter, r *http.Request, req *request) { a.search(w, r, req, nil) })
	case len(s) == 1:
		typ := s[0]
		switch m {
		case http.MethodPost:
			a.create(w, r, req, typ)
		case http.MethodGet:
			a.search(w, r, req, []string{typ})
		case http.MethodPut, http.MethodDelete, http.MethodPatch:
			a.conditional(w, r, req, typ, "")
		default:
			a.methodNotAllowed(w, r, "GET, POST, PUT, DELETE, PATCH")
		}
	case len(s) == 2 && s[1] == "_history":
		a.only(w, r, req, http.MethodGet, func(w http.ResponseWriter, r *http.Request, req *request) { a.history(w, r, req, s[0], "") })
	case len(s) == 2 && s[1] == "_search":
		a.only(w, r, req, http.MethodPost, func(w http.ResponseWriter, r *http.Request, req *request) { a.search(w, r, req, []string{s[0]}) })
	case len(s) == 2:
		typ, id := s[0], s[1]
		if !validID(id) {
			a.writeError(w, r, badRequest("id", "%q is not a valid FHIR id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", id))
			return
		}
		switch m {
		case http.MethodGet, http.MethodHead:
			a.read(w, r, req, typ, id)
		case http.MethodPut:
			a.update(w, r, req, typ, id)
		case http.MethodDelete:
			a.delete(w, r, req, typ, id)
		case http.MethodPatch:
			a.conditional(w, r, req, typ, id)
		default:
			a.methodNotAllowed(w, r, "GET, HEAD, PUT, DELETE, PATCH")
		}
	case len(s) == 3 && s[2] != "_history" && s[2] != "_search" && (m == http.MethodGet || m == http.MethodHead):
		a.compartmentSearch(w, r, req, s[0], s[1], s[2])
	case len(s) == 3 && s[2] == "_history":
		a.only(w, r, req, http.MethodGet, func(w http.ResponseWriter, r *http.Request, req *request) { a.history(w, r, req, s[0], s[1]) })
	case len(s) == 4 && s[2] == "_history":
		a.only(w, r, req, http.MethodGet, func(w http.ResponseWriter, r *http.Request, req *request) { a.vread(w, r, req, s[0], s[1], s[3]) })
	default:
		a.writeError(w, r, &httpError{status: 404, code: "not-found", detail: DetailNotFound, msg: "No FHIR interaction matches " + r.URL.Path})
	}
}

func (a *API) only(w http.ResponseWriter, r *http.Request, req *request, method string, h func(http.ResponseWriter, *http.Request, *request)) {
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		a.methodNotAllowed(w, r, method)
		return
	}
	h(w, r, req)
}

func (a *API) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	a.writeError(w, r, &httpError{status: 405, code: "not-supported", detail: DetailMethod,
		msg: r.Method + " is not allowed here; allowed: " + allow, header: map[string]string{"Allow": allow}})
}

// validID checks the FHIR id syntax: [A-Za-z0-9\-\.]{1,64}.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
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

// negotiate checks _format, Accept and Content-Type: JSON only.
func (a *API) negotiate(r *http.Request, req *request) error {
	q := r.URL.Query()
	if f := q.Get("_format"); f != "" {
		if !jsonFormat(f) {
			return &httpError{status: 406, code: "not-supported", detail: DetailNotAcceptable, msg: "_format " + f + " is not supported; Kiln speaks application/fhir+json only", expr: "_format"}
		}
	} else if acc := r.Header.Get("Accept"); acc != "" && !acceptsJSON(acc) {
		return &httpError{status: 406, code: "not-supported", detail: DetailNotAcceptable, msg: "Accept " + acc + " cannot be satisfied; Kiln speaks application/fhir+json only"}
	}
	switch q.Get("_pretty") {
	case "", "false":
	case "true":
		req.pretty = true
	default:
		return badRequest("_pretty", "_pretty must be true or false")
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || !(mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir" ||
				mt == "application/x-www-form-urlencoded" && strings.HasSuffix(r.URL.Path, "/_search") ||
				mt == "application/json-patch+json" && r.Method == http.MethodPatch) {
				return &httpError{status: 415, code: "not-supported", detail: DetailUnsupportedType, msg: "Content-Type " + ct + " is not supported; send application/fhir+json"}
			}
		}
	}
	return nil
}

func jsonFormat(f string) bool {
	mt, _, err := mime.ParseMediaType(f)
	if err != nil {
		mt = strings.TrimSpace(f)
	}
	switch strings.ToLower(mt) {
	case "json", "application/json", "application/fhir+json", "application/json+fhir":
		return true
	}
	return false
}

func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["q"] == "0" {
			continue
		}
		switch mt {
		case "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir":
			return true
		}
	}
	return false
}

// writeJSON renders v with the FHIR JSON content type.
func (a *API) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if r.URL.Query().Get("_pretty") == "true" {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		a.log.Error("render json", "err", err)
		http.Error(w, "render error", 500)
		return
	}
	a.writeBody(w, r, status, buf.Bytes())
}

// writeBody sends raw FHIR JSON.
func (a *API) writeBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	WriteBody(w, r, status, body)
}

// WriteBody sends a raw FHIR JSON body with the FHIR content type,
// indenting it for _pretty=true and omitting it for HEAD. Other packages
// that answer FHIR requests (bundles) use it so every answer looks alike.
func WriteBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	if r.URL.Query().Get("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/fhir+json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// readBody reads a bounded request body.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errorsAs(err, &mbe) {
			return nil, &httpError{status: 413, code: "too-costly", detail: DetailTooLarge, msg: "The request body exceeds the limit of " + itoa(a.cfg.MaxBodyBytes) + " bytes."}
		}
		return nil, badRequest("", "reading the request body: %v", err)
	}
	if buf.Len() == 0 {
		return nil, badRequest("", "the request body is empty; send a FHIR resource as application/fhir+json")
	}
	return buf.Bytes(), nil
}
