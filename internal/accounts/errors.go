package accounts

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: no account by that name.
	ErrNotFound = errors.New("accounts: account not found")
	// ErrExists: an account by that name already exists.
	ErrExists = errors.New("accounts: account already exists")
	// ErrInvalid: the request is malformed (bad name, bad key source, missing key URI).
	ErrInvalid = errors.New("accounts: invalid request")
	// ErrImmutable: a change to something fixed at creation (keySource).
	ErrImmutable = errors.New("accounts: immutable setting")
	// ErrKeyUnusable: the customer key cannot be used (at creation or key change);
	// the wrapped keys error says why.
	ErrKeyUnusable = errors.New("accounts: key unusable")
	// ErrReserved: the name is reserved for the system.
	ErrReserved = errors.New("accounts: reserved account")
)

// InvalidError is an ErrInvalid with the offending field.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("accounts: invalid %s: %s", e.Field, e.Reason)
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// KeyError is ErrKeyUnusable with the cause from package keys.
type KeyError struct {
	KeyURI string
	Reason string // a stable code, see Reason* constants
	Err    error
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("accounts: key %s unusable (%s): %v", e.KeyURI, e.Reason, e.Err)
}

func (e *KeyError) Unwrap() []error { return []error{ErrKeyUnusable, e.Err} }

// AccessLostError is returned by Keys while an account cannot be read
// because its customer-managed key is not accessible.
type AccessLostError struct {
	Account string
	Status  KeyStatus
	Reason  string // stable reason code
	Message string // human text: why, and how to restore
}

func (e *AccessLostError) Error() string {
	return fmt.Sprintf("accounts: %s: customer-managed key access lost (%s, %s): %s", e.Account, e.Status, e.Reason, e.Message)
}
