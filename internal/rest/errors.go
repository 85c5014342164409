package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/seal"
)

// DetailsSystem is the CodeSystem of Kiln's stable error details codes.
const DetailsSystem = "https://kiln.dev/fhir/CodeSystem/error"

// Stable details codes.
const (
	DetailAccessLost      = "cmk-access-lost"
	DetailAccountNotFound = "account-not-found"
	DetailNotFound        = "resource-not-found"
	DetailDeleted         = "resource-deleted"
	DetailUnknownType     = "unknown-resource-type"
	DetailInvalid         = "invalid-resource"
	DetailPrecondition    = "precondition-failed"
	DetailConflict        = "version-conflict"
	DetailBadRequest      = "bad-request"
	DetailNotAcceptable   = "not-acceptable"
	DetailUnsupportedType = "unsupported-media-type"
	DetailMethod          = "method-not-allowed"
	DetailTooLarge        = "request-too-large"
	DetailNotSupported    = "not-supported"
	DetailInternal        = "internal-error"
	DetailReadOnly        = "read-only-account"
)

// httpError is a client error found by rest itself (bad parameter,
// unsupported media type, ...).
type httpError struct {
	status int
	code   string // issue type
	detail string // details code
	msg    string
	expr   string
	header map[string]string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(expr, format string, args ...any) error {
	return &httpError{status: 400, code: "invalid", detail: DetailBadRequest, msg: fmt.Sprintf(format, args...), expr: expr}
}

func notSupported(format string, args ...any) error {
	return &httpError{status: 400, code: "not-supported", detail: DetailNotSupported, msg: fmt.Sprintf(format, args...)}
}

// issue is one OperationOutcome.issue.
type issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Details     *details `json:"details,omitempty"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

type details struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type operationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []issue `json:"issue"`
}

func outcome(severity, code, detail, msg string, expr ...string) operationOutcome {
	is := issue{Severity: severity, Code: code, Diagnostics: msg, Expression: expr}
	if detail != "" {
		is.Details = &details{Coding: []coding{{System: DetailsSystem, Code: detail}}, Text: msg}
	}
	return operationOutcome{ResourceType: "OperationOutcome", Issue: []issue{is}}
}

// classify maps an error to a status and an OperationOutcome. It is the
// only place that decides error statuses.
func (a *API) classify(err error) (int, operationOutcome, map[string]string) {
	var (
		he    *httpError
		inv   *resources.InvalidError
		gone  *resources.GoneError
		pre   *resources.PreconditionError
		lost  *accounts.AccessLostError
		accIn *accounts.InvalidError
		de    *fhir.DecodeError
	)
	var se *StatusError
	if errors.As(err, &se) {
		he = &httpError{status: se.Status, code: se.Code, detail: se.Detail, msg: se.Msg, expr: se.Expr}
		err = he
	}
	switch {
	case errors.As(err, &he):
		oo := outcome("error", he.code, he.detail, he.msg)
		if he.expr != "" {
			oo.Issue[0].Expression = []string{he.expr}
		}
		return he.status, oo, he.header
	case errors.As(err, &inv):
		oo := operationOutcome{ResourceType: "OperationOutcome"}
		for _, i := range inv.Issues {
			is := issue{Severity: i.Severity, Code: i.Code, Diagnostics: i.Diagnostics,
				Details: &details{Coding: []coding{{System: DetailsSystem, Code: DetailInvalid}}, Text: i.Diagnostics}}
			if i.Expression != "" {
				is.Expression = []string{i.Expression}
			}
			oo.Issue = append(oo.Issue, is)
		}
		if len(oo.Issue) == 0 {
			oo = outcome("error", "invalid", DetailInvalid, "invalid resource")
		}
		status := inv.Status
		if status == 0 {
			status = 400
		}
		return status, oo, nil
	case errors.As(err, &de):
		return 400, outcome("error", "structure", DetailInvalid, de.Error()), nil
	case errors.As(err, &lost):
		msg := fmt.Sprintf("Account %q cannot be read or written: its customer-managed key is not accessible (%s: %s). %s",
			lost.Account, lost.Status, lost.Reason, lost.Message)
		return 403, outcome("error", "forbidden", DetailAccessLost, msg), nil
	case errors.Is(err, seal.ErrWiped):
		return 403, outcome("error", "forbidden", DetailAccessLost, "The account's customer-managed key access was lost while the request ran."), nil
	case errors.Is(err, accounts.ErrNotFound):
		return 404, outcome("error", "not-found", DetailAccountNotFound, "No account by that name. Create it with PUT /management/accounts/{name}."), nil
	case errors.As(err, &gone):
		return 410, outcome("error", "deleted", DetailDeleted, fmt.Sprintf("%s/%s was deleted (version %d).", gone.Type, gone.ID, gone.VersionID)),
			map[string]string{"ETag": etag(gone.VersionID)}
	case errors.Is(err, resources.ErrUnknownType):
		return 404, outcome("error", "not-supported", DetailUnknownType, err.Error()), nil
	case errors.Is(err, resources.ErrNotFound):
		return 404, outcome("error", "not-found", DetailNotFound, "Resource not found."), nil
	case errors.As(err, &pre):
		return 412, outcome("error", "conflict", DetailPrecondition, pre.Error()), nil
	case errors.Is(err, resources.ErrConflict):
		return 409, outcome("error", "conflict", DetailConflict, "The resource was changed by another request; retry."), nil
	case errors.As(err, &accIn):
		return 400, outcome("error", "invalid", DetailBadRequest, accIn.Error()), nil
	}
	return 500, outcome("error", "exception", DetailInternal, "Internal server error; see the server log."), nil
}

// writeError renders err as an OperationOutcome with its status.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	status, oo, hdr := a.classify(err)
	if status >= 500 {
		a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.DebugContext(r.Context(), "client error", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	a.writeJSON(w, r, status, oo)
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// StatusError is a client error found by a handler plugged into Config
// (Bundles): it is rendered exactly like rest's own client errors. Status
// must be a 4xx; Code is the issue type (e.g. "invalid"), Detail one of the
// Detail* codes (or empty) and Expr an optional FHIRPath location.
type StatusError struct {
	Status            int
	Code, Detail, Msg string
	Expr              string
}

func (e *StatusError) Error() string { return e.Msg }

// ErrorOutcome maps err to its HTTP status, OperationOutcome JSON and extra
// headers with the same mapping rest's handlers use. Plugged-in handlers use
// it for errors that do not end the request (a batch entry's outcome).
func ErrorOutcome(err error) (status int, outcome []byte, header map[string]string) {
	var a *API // classify uses no API state
	status, oo, header := a.classify(err)
	outcome, mErr := json.Marshal(oo)
	if mErr != nil {
		return 500, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`), nil
	}
	return status, outcome, header
}

// WriteError renders err as an OperationOutcome response, exactly as rest's
// own handlers do (5xx are logged as errors on log).
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	a := &API{log: log}
	if log == nil {
		a.log = slog.Default()
	}
	a.writeError(w, r, err)
}
