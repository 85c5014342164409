package search_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
)

// TestConditionalCreateRace runs many concurrent identical conditional
// creates (lock, Resolve, create if none, unlock) and expects one resource.
func TestConditionalCreateRace(t *testing.T) {
	e := newEnv(t)
	_, s, _ := searchers(t, e)
	ctx := context.Background()
	q := url.Values{"identifier": {"urn:race|42"}}
	body := []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:race","value":"42"}]}`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := s.ConditionalLock(ctx, "default", "Patient")
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			refs, err := s.Resolve(ctx, "default", "Patient", q)
			if err != nil {
				t.Error(err)
				return
			}
			if len(refs) == 0 {
				if _, err := e.inst.Server.Resources.Create(ctx, "default", "Patient", body); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	refs, err := s.Resolve(ctx, "default", "Patient", q)
	if err != nil {
		t.Fatal(err)
	}
	if created != 1 || len(refs) != 1 {
		t.Fatalf("created %d, found %d; want exactly one", created, len(refs))
	}
	// Resolve rejects unknown parameters (strict) with a 400-class error.
	if _, err := s.Resolve(ctx, "default", "Patient", url.Values{"bogus": {"1"}}); err == nil {
		t.Fatal("Resolve accepted an unknown parameter")
	}
}
