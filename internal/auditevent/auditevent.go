// Package auditevent records account and key lifecycle events
// (accounts.Event) as FHIR R4 AuditEvent resources in the system account,
// and reads them back for the management API.
//
// Recording never blocks the caller: events go through a bounded queue to
// one writer goroutine. When the queue is full an event is dropped and a
// warning logged (the slog record of every event is still written by
// package accounts). The package sits above resources and accounts and is
// wired in cmd/kiln.
package auditevent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/store"
)

// EventSystem is the CodeSystem of Kiln's key-event subtypes.
const EventSystem = "https://kiln.dev/fhir/CodeSystem/key-event"

// Recorder writes events to the system account.
type Recorder struct {
	res     *resources.Service
	st      store.Store
	account string
	log     *slog.Logger
	queue   chan accounts.Event
	done    chan struct{}

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
}

// New starts a recorder that writes into account (the system account).
// Call Close to flush and stop it.
func New(res *resources.Service, st store.Store, account string, log *slog.Logger) *Recorder {
	r := &Recorder{res: res, st: st, account: account, log: log, queue: make(chan accounts.Event, 1024), done: make(chan struct{})}
	go r.loop()
	return r
}

// Record implements accounts.AuditSink.
func (r *Recorder) Record(_ context.Context, e accounts.Event) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.log.Warn("audit recorder closed; AuditEvent not written (the event is in the log)", "account", e.Account, "action", e.Action)
		return
	}
	select {
	case r.queue <- e:
	default:
		r.log.Warn("audit queue full; AuditEvent dropped (the event is in the log)", "account", e.Account, "action", e.Action)
	}
}

// Close flushes queued events and stops the writer.
func (r *Recorder) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	<-r.done
}

func (r *Recorder) loop() {
	defer close(r.done)
	for e := range r.queue {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		body, err := json.Marshal(Build(e))
		if err == nil {
			_, err = r.res.Create(ctx, r.account, "AuditEvent", body)
		}
		cancel()
		if err != nil {
			r.log.Error("write AuditEvent", "account", e.Account, "action", e.Action, "err", err)
		}
	}
}

// Build renders an event as an AuditEvent resource.
func Build(e accounts.Event) map[string]any {
	outcome := "0"
	if !e.Success {
		outcome = "4"
		if e.Action == accounts.ActionRevoked {
			outcome = "8"
		}
	}
	desc := e.Message
	if desc == "" {
		desc = e.Action + " for account " + e.Account
	}
	detail := []any{}
	add := func(typ, v string) {
		if v != "" {
			detail = append(detail, map[string]any{"type": typ, "valueString": v})
		}
	}
	add("keyUri", e.KeyURI)
	add("keyVersion", e.KeyVersion)
	add("previousVersion", e.PreviousVersion)
	add("keyStatus", string(e.Status))
	add("reason", e.Reason)
	entity := map[string]any{
		"what": map[string]any{"display": "account " + e.Account},
		"name": e.Account,
	}
	if len(detail) > 0 {
		entity["detail"] = detail
	}
	return map[string]any{
		"resourceType": "AuditEvent",
		"type": map[string]any{
			"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110113", "display": "Security Alert",
		},
		"subtype":     []any{map[string]any{"system": EventSystem, "code": e.Action}},
		"action":      "E",
		"recorded":    e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		"outcome":     outcome,
		"outcomeDesc": desc,
		"agent": []any{map[string]any{
			"type":      map[string]any{"text": "Kiln key monitor"},
			"who":       map[string]any{"display": "kiln"},
			"requestor": false,
		}},
		"source": map[string]any{"observer": map[string]any{"display": "kiln"}},
		"entity": []any{entity},
	}
}

// AuditEvents returns recorded AuditEvents, newest first, optionally only
// those of one account and recorded at or after since.
func (r *Recorder) AuditEvents(ctx context.Context, account string, since time.Time, limit int) ([]json.RawMessage, error) {
	keys, err := r.res.Keys(ctx, r.account)
	if err != nil {
		return nil, err
	}
	type item struct {
		at   string
		body json.RawMessage
	}
	var items []item
	after := store.Ref{}
	for {
		vs, err := r.st.Scan(ctx, r.account, "AuditEvent", after, 500)
		if err != nil {
			return nil, fmt.Errorf("auditevent: scan: %w", err)
		}
		for _, v := range vs {
			res, err := r.res.Open(keys, r.account, v)
			if err != nil {
				return nil, err
			}
			var ev struct {
				Recorded string `json:"recorded"`
				Entity   []struct {
					Name string `json:"name"`
				} `json:"entity"`
			}
			if json.Unmarshal(res.Body, &ev) != nil {
				continue
			}
			if account != "" && (len(ev.Entity) == 0 || ev.Entity[0].Name != account) {
				continue
			}
			if !since.IsZero() {
				if t, err := time.Parse(time.RFC3339Nano, ev.Recorded); err == nil && t.Before(since) {
					continue
				}
			}
			items = append(items, item{at: ev.Recorded, body: res.Body})
		}
		if len(vs) < 500 {
			break
		}
		after = store.Ref{Type: vs[len(vs)-1].Type, ID: vs[len(vs)-1].ID}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].at > items[j].at })
	if limit > 0 && len(items) > limit {
		items = items[:limit]
	}
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		out[i] = it.body
	}
	return out, nil
}
