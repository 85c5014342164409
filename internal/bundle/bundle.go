package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/rest"
	"github.com/kilnhealth/kiln/internal/store"
)

// Resolver finds the current resources of one type that match a FHIR search
// query. Package search implements it; conditional create, update, delete
// and conditional references need it.
type Resolver interface {
	// Resolve returns the refs of the current, non-deleted resources of typ
	// matching query (search parameters as in a type-level search).
	Resolve(ctx context.Context, account, typ string, query url.Values) ([]store.Ref, error)
}

// Locker takes named locks that exclude other holders in every process on
// the same store (store.Store implements it).
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// Defaults of Config.
const (
	DefaultMaxEntries   = 10000
	DefaultMaxBodyBytes = 64 << 20
)

// Config wires a Handler. Resources is required.
type Config struct {
	Resources *resources.Service
	// Resolver answers conditional operations and conditional references;
	// without it they are answered with 400 not-supported.
	Resolver Resolver
	// Locker makes conditional creates race-free (optional; without it two
	// concurrent conditional creates may both create).
	Locker Locker
	// Reads answers GET entries (the FHIR API handler, mounted at
	// rest.Prefix). Without it GET entries get 400 not-supported.
	Reads http.Handler
	// MaxEntries bounds the entries of one Bundle (default
	// DefaultMaxEntries); more are answered with 413.
	MaxEntries int
	// MaxBodyBytes bounds the request body (default DefaultMaxBodyBytes);
	// a larger body is answered with 413.
	MaxBodyBytes int64
	// PublicURL, when set, is the externally visible origin, as in rest.Config.
	PublicURL string
	// Workers bounds the goroutines that parse, validate and seal the
	// entries of one Bundle (default GOMAXPROCS).
	Workers int
	// Now is the clock of response Bundles' meta.lastUpdated (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler serves POST /fhir/{account} with a batch or transaction Bundle.
// Safe for concurrent use.
type Handler struct {
	cfg Config
	res *resources.Service
	log *slog.Logger
}

// New builds a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Resources == nil {
		return nil, errors.New("bundle: Config needs Resources")
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg, res: cfg.Resources, log: cfg.Logger}, nil
}

// wire shapes of the request Bundle: resources stay raw until validated.
type inBundle struct {
	ResourceType string    `json:"resourceType"`
	Type         string    `json:"type"`
	Entry        []inEntry `json:"entry"`
}

type inEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *inRequest      `json:"request"`
	// decoded is the resource already decoded by decodeStrict (then
	// Resource is empty).
	decoded map[string]any
}

type inRequest struct {
	Method          string `json:"method"`
	URL             string `json:"url"`
	IfNoneMatch     string `json:"ifNoneMatch"`
	IfModifiedSince string `json:"ifModifiedSince"`
	IfMatch         string `json:"ifMatch"`
	IfNoneExist     string `json:"ifNoneExist"`
}

// clientError builds a 4xx StatusError.
func clientError(status int, code, detail, format string, args ...any) *rest.StatusError {
	return &rest.StatusError{Status: status, Code: code, Detail: detail, Msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *rest.StatusError {
	return clientError(400, "invalid", rest.DetailBadRequest, format, args...)
}

func notSupported(format string, args ...any) *rest.StatusError {
	return clientError(400, "not-supported", rest.DetailNotSupported, format, args...)
}

// EntryError is the failure of one entry: Index is its position in the
// request Bundle.
type EntryError struct {
	Index  int
	Method string
	URL    string
	Err    error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("Bundle.entry[%d] (%s %s): %v", e.Index, e.Method, e.URL, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// ServeHTTP processes one batch or transaction Bundle.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	account := strings.Trim(strings.TrimPrefix(r.URL.Path, rest.Prefix), "/")
	if account == "" || strings.Contains(account, "/") {
		h.fail(w, r, badRequest("batch and transaction Bundles are posted to the account base /fhir/{account}"))
		return
	}
	body, err := h.readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := h.decode(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := &processing{
		h: h, account: account, base: h.origin(r) + rest.Prefix + account,
		prefer: preferReturn(r), req: r, transaction: b.Type == "transaction",
	}
	if p.keys, err = h.res.Keys(ctx, account); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := p.parse(b); err != nil {
		h.fail(w, r, err)
		return
	}
	if p.transaction {
		err = p.runTransaction(ctx)
	} else {
		err = p.runBatch(ctx)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, p.response())
}

// readBody reads the request body up to MaxBodyBytes (413 beyond).
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= h.cfg.MaxBodyBytes {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, clientError(413, "too-costly", rest.DetailTooLarge,
				"The Bundle exceeds the request size limit of %d bytes; split it into smaller Bundles.", h.cfg.MaxBodyBytes)
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	if buf.Len() == 0 {
		return nil, badRequest("the request body is empty; send a batch or transaction Bundle as application/fhir+json")
	}
	return buf.Bytes(), nil
}

// decode decodes the Bundle and checks its envelope. Well-formed input
// is decoded once, resources included (decodeStrict); anything else goes
// through the lenient envelope decoding, whose errors the client gets.
func (h *Handler) decode(body []byte) (*inBundle, error) {
	b, ok := decodeStrict(body)
	if !ok {
		var err error
		if b, err = decodeLenient(body); err != nil {
			return nil, err
		}
	}
	if b.ResourceType != "Bundle" {
		return nil, badRequest("POST to the account base takes a Bundle of type batch or transaction, not %q", b.ResourceType)
	}
	switch b.Type {
	case "batch", "transaction":
	default:
		return nil, badRequest("Bundle.type must be batch or transaction to be processed, not %q", b.Type)
	}
	if len(b.Entry) > h.cfg.MaxEntries {
		return nil, clientError(413, "too-costly", rest.DetailTooLarge,
			"the Bundle has %d entries; this server processes at most %d per Bundle", len(b.Entry), h.cfg.MaxEntries)
	}
	return b, nil
}

// decodeLenient decodes the envelope with encoding/json, each resource
// kept raw.
func decodeLenient(body []byte) (*inBundle, error) {
	var b inBundle
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&b); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, clientError(400, "structure", rest.DetailInvalid, "the Bundle is malformed: %s has the wrong JSON type (%s)", ute.Field, ute.Value)
		}
		return nil, clientError(400, "structure", rest.DetailInvalid, "the body is not a JSON Bundle: %v", err)
	}
	if dec.More() {
		return nil, clientError(400, "structure", rest.DetailInvalid, "the body has data after the Bundle")
	}
	return &b, nil
}

func (h *Handler) origin(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return strings.TrimRight(h.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// fail renders a request-level error. An EntryError names its entry in
// every issue.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ee *EntryError
	if !errors.As(err, &ee) {
		rest.WriteError(w, r, h.log, err)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	status, oo, hdr := rest.ErrorOutcome(ee.Err)
	if status >= 500 {
		h.log.ErrorContext(r.Context(), "bundle entry failed", "entry", ee.Index, "err", ee.Err)
	}
	oo = locate(oo, ee)
	for k, v := range hdr {
		if k != "ETag" {
			w.Header().Set(k, v)
		}
	}
	h.writeBody(w, r, status, oo)
}

// locate adds the entry's location to every issue of an OperationOutcome.
func locate(oo []byte, ee *EntryError) []byte {
	var m map[string]any
	if json.Unmarshal(oo, &m) != nil {
		return oo
	}
	where := "Bundle.entry[" + strconv.Itoa(ee.Index) + "]"
	issues, _ := m["issue"].([]any)
	for _, x := range issues {
		is, ok := x.(map[string]any)
		if !ok {
			continue
		}
		exprs, _ := is["expression"].([]any)
		located := []any{where}
		for _, e := range exprs {
			if s, ok := e.(string); ok {
				located = append(located, rootAtEntry(where, s))
			}
		}
		is["expression"] = located
		d, _ := is["diagnostics"].(string)
		is["diagnostics"] = where + " (" + ee.Method + " " + ee.URL + "): " + d
		if det, ok := is["details"].(map[string]any); ok {
			det["text"] = is["diagnostics"]
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return oo
	}
	return out
}

// rootAtEntry re-roots a FHIRPath location inside an entry's resource
// ("Observation.code") at the Bundle ("Bundle.entry[1].resource.code"), so
// every expression of a Bundle's OperationOutcome starts from the Bundle
// that was posted. An expression that does not start with a resource type
// is returned as it is.
func rootAtEntry(where, expr string) string {
	root, rest, _ := strings.Cut(expr, ".")
	if root == "" || root[0] < 'A' || root[0] > 'Z' || strings.ContainsAny(root, "[(") {
		return expr
	}
	if rest == "" {
		return where + ".resource"
	}
	return where + ".resource." + rest
}

func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		rest.WriteError(w, r, h.log, fmt.Errorf("bundle: render response: %w", err))
		return
	}
	h.writeBody(w, r, status, buf.Bytes())
}

func (h *Handler) writeBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	rest.WriteBody(w, r, status, body)
}

// preferReturn reads Prefer: return=minimal|representation|OperationOutcome.
func preferReturn(r *http.Request) string {
	for _, p := range strings.Split(r.Header.Get("Prefer"), ",") {
		p = strings.TrimSpace(p)
		if v, ok := strings.CutPrefix(p, "return="); ok {
			switch v = strings.Trim(v, `"`); v {
			case "minimal", "representation", "OperationOutcome":
				return v
			}
		}
	}
	return "representation"
}
