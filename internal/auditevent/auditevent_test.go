package auditevent

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/accounts"
)

// TestRecordAfterCloseDoesNotPanic: the key monitor may report an event
// while the server shuts down.
func TestRecordAfterCloseDoesNotPanic(t *testing.T) {
	r := &Recorder{log: slog.New(slog.DiscardHandler), queue: make(chan accounts.Event, 4), done: make(chan struct{})}
	go func() { // a loop that drains without writing
		defer close(r.done)
		for range r.queue {
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				r.Record(context.Background(), accounts.Event{Account: "a", Action: accounts.ActionRevoked})
			}
		}()
	}
	time.Sleep(time.Millisecond)
	r.Close()
	wg.Wait()
	r.Record(context.Background(), accounts.Event{Account: "a"})
	r.Close() // idempotent
}

func TestBuildIsAnAuditEvent(t *testing.T) {
	ev := Build(accounts.Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Account: "acme", Action: accounts.ActionRotated,
		Success: true, KeyURI: "https://v/keys/k", KeyVersion: "2", PreviousVersion: "1"})
	if ev["resourceType"] != "AuditEvent" || ev["recorded"] != "2026-01-02T03:04:05.000Z" || ev["outcome"] != "0" {
		t.Fatalf("%v", ev)
	}
	sub := ev["subtype"].([]any)[0].(map[string]any)
	if sub["code"] != accounts.ActionRotated || sub["system"] != EventSystem {
		t.Fatalf("subtype %v", sub)
	}
	if Build(accounts.Event{Action: accounts.ActionRevoked})["outcome"] != "8" {
		t.Fatal("a revocation is a serious failure")
	}
}
