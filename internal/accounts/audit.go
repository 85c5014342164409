package accounts

import (
	"context"
	"time"
)

// Audit actions. They appear in AuditEvents and logs: stable.
const (
	ActionCreated        = "account-created"
	ActionDeleted        = "account-deleted"
	ActionCheckFailed    = "key-check-failed"
	ActionCheckRecovered = "key-check-recovered"
	ActionRotated        = "key-rotated"
	ActionRewrapped      = "key-rewrapped"
	ActionRevoked        = "key-access-revoked"
	ActionRestored       = "key-access-restored"
	ActionKeyChanged     = "key-changed"
)

// Event is one key or account lifecycle event.
type Event struct {
	Time            time.Time
	Account         string
	Action          string
	Success         bool
	KeyURI          string
	KeyVersion      string
	PreviousVersion string
	Status          KeyStatus
	Reason          string
	Message         string
}

// AuditSink receives lifecycle events. Record must not block for long and
// must be safe for concurrent use; failures are the sink's to log.
type AuditSink interface {
	Record(ctx context.Context, e Event)
}

// Observer receives measurements for metrics. All methods must be cheap and
// safe for concurrent use. A nil Observer in Config records nothing.
type Observer interface {
	KeyCheck(account string, err error, d time.Duration)
	Unwrap(account string, err error, d time.Duration)
	Rewrap(account string)
	Status(account string, s KeyStatus)
	Forget(account string)
}
