package resources

import (
	"errors"
	"fmt"

	"github.com/kilnhealth/kiln/internal/fhir"
)

var (
	// ErrNotFound: the resource (or version) never existed.
	ErrNotFound = errors.New("resources: not found")
	// ErrConflict: a concurrent writer changed the resource first.
	ErrConflict = errors.New("resources: version conflict")
	// ErrUnknownType: the URL names no R4 resource type.
	ErrUnknownType = errors.New("resources: unknown resource type")
)

// GoneError: the resource's current version is a delete marker.
type GoneError struct {
	Type, ID  string
	VersionID int64
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("resources: %s/%s was deleted (version %d)", e.Type, e.ID, e.VersionID)
}

// PreconditionError: an If-Match or similar precondition did not hold.
type PreconditionError struct {
	Want, Have int64
	Msg        string
}

func (e *PreconditionError) Error() string {
	if e.Msg != "" {
		return "Precondition failed: " + e.Msg
	}
	return fmt.Sprintf("Precondition failed: If-Match names version %d but the current version is %d.", e.Want, e.Have)
}

// InvalidError carries validation issues. Status is 400 for a malformed or
// structurally invalid resource, 422 for a business rule.
type InvalidError struct {
	Status int
	Issues []fhir.Issue
}

func (e *InvalidError) Error() string {
	if len(e.Issues) == 0 {
		return "resources: invalid resource"
	}
	i := e.Issues[0]
	return fmt.Sprintf("resources: invalid resource: %s: %s (and %d more)", i.Expression, i.Diagnostics, len(e.Issues)-1)
}

func invalid(status int, code, expr, format string, args ...any) *InvalidError {
	return &InvalidError{Status: status, Issues: []fhir.Issue{{Severity: "error", Code: code, Expression: expr, Diagnostics: fmt.Sprintf(format, args...)}}}
}
