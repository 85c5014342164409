package search_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/store"
)

// TestReindex drops every resource's tokens (as a definition change would
// make them stale), checks searches then miss, and rebuilds them with
// batches (cursor resumption) and with the background job.
func TestReindex(t *testing.T) {
	e := loadFixtures(t)
	ctx := context.Background()
	_, s, _ := searchers(t, e)
	st := e.inst.Server.Store
	wipe := func() {
		vs, err := st.Scan(ctx, "default", "", store.Ref{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if err := st.ReplaceIndex(ctx, "default", store.Ref{Type: v.Type, ID: v.ID}, v.VersionID, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(want int) {
		t.Helper()
		if got := e.ids(t, "Patient?name=peter"); len(got) != want {
			t.Fatalf("name=peter: %v, want %d", got, want)
		}
		if got := e.ids(t, "Observation?date=ge2020&_sort=date"); len(got) != 5*want {
			t.Fatalf("date=ge2020: %v", got)
		}
	}
	check(1)
	wipe()
	check(0)

	// Batches of 3 with the cursor carried over.
	var cursor store.Ref
	total, rounds := 0, 0
	for {
		next, n, _, done, err := s.ReindexBatch(ctx, "default", cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n > 3 || (next == cursor && !done) {
			t.Fatalf("batch did not advance: %v -> %v (%d)", cursor, next, n)
		}
		total += n
		cursor = next
		rounds++
		if done {
			break
		}
	}
	if total != len(fixtures) || rounds < len(fixtures)/3 {
		t.Fatalf("reindexed %d in %d rounds, want %d", total, rounds, len(fixtures))
	}
	check(1)

	// The background job.
	wipe()
	x := search.NewReindexer(s, 4)
	x.Start("default")
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, ok := x.Status("default")
		if !ok {
			t.Fatal("no job")
		}
		if j.State == "done" {
			if j.Done != len(fixtures) {
				t.Fatalf("job reindexed %d, want %d", j.Done, len(fixtures))
			}
			break
		}
		if j.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("job: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	check(1)

	// Over HTTP: POST starts (202), GET reports progress until done.
	wipe()
	check(0)
	r := e.inst.Do(t, "POST", base+"/$reindex", nil).Want(t, 202).JSON(t)
	if r["resourceType"] != "Parameters" {
		t.Fatalf("POST $reindex: %v", r)
	}
	for {
		r = e.inst.Do(t, "GET", base+"/$reindex", nil).Want(t, 200).JSON(t)
		state := fmt.Sprint(r["parameter"].([]any)[0].(map[string]any)["valueCode"])
		if state == "done" {
			break
		}
		if state != "running" || time.Now().After(deadline) {
			t.Fatalf("$reindex: %v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	check(1)
}
