package vault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// AuditRecord is one line of the audit log (JSON lines, append-only).
type AuditRecord struct {
	Time      time.Time `json:"time"`
	Principal string    `json:"principal"`         // "" when the caller did not authenticate
	Operation string    `json:"operation"`         // e.g. "wrapKey", "create", "policy.set"
	Key       string    `json:"key,omitempty"`     // key name, or principal for policy/token operations
	Version   string    `json:"version,omitempty"` // key version acted on, when known
	Result    string    `json:"result"`            // "ok", "denied", "unauthenticated" or "error"
	Status    int       `json:"status"`            // HTTP status answered
	Code      string    `json:"code,omitempty"`    // AKV error code when not ok
}

// auditLog appends records to {data}/audit.log. Each record is one write(2)
// of a full line, so a kill -9 loses at most a record whose request was not
// answered yet; readers skip a torn last line.
type auditLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

func openAudit(path string) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vault: open audit log: %w", err)
	}
	return &auditLog{f: f, path: path}, nil
}

func (a *auditLog) append(rec AuditRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("vault: encode audit record: %w", err)
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return fmt.Errorf("vault: audit log closed")
	}
	if _, err := a.f.Write(b); err != nil {
		return fmt.Errorf("vault: append audit record: %w", err)
	}
	return nil
}

// query returns the records at or after since, oldest first, at most limit.
func (a *auditLog) query(ctx context.Context, since time.Time, limit int) ([]AuditRecord, error) {
	f, err := os.Open(a.path)
	if err != nil {
		return nil, fmt.Errorf("vault: read audit log: %w", err)
	}
	defer f.Close()
	out := []AuditRecord{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var r AuditRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a torn line from a crash
		}
		if r.Time.Before(since) {
			continue
		}
		out = append(out, r)
		if len(out) >= limit {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("vault: read audit log: %w", err)
	}
	return out, nil
}

func (a *auditLog) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
