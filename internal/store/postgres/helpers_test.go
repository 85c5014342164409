package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
)

func baseURL(t testing.TB) string       { return pgtest.URL(t) }
func admin(t testing.TB, u, sql string) { pgtest.Exec(t, u, sql) }
func freshSchema(t testing.TB) string   { return pgtest.FreshSchema(t) }
func freshDatabase(t testing.TB) string { return pgtest.FreshDatabase(t) }
func open(t testing.TB, u string) *postgres.Store {
	return pgtest.Open(t, u, postgres.Options{})
}

func mustAccount(t testing.TB, s store.Store, name string) store.Account {
	t.Helper()
	a, err := s.CreateAccount(context.Background(), store.Account{Name: name, Data: []byte("ring")})
	if err != nil {
		t.Fatalf("CreateAccount(%q): %v", name, err)
	}
	return a
}

// write builds a Write of version v of Patient/id.
func write(id string, v int64, ifVersion int64, body string, tokens ...string) store.Write {
	w := store.Write{
		Version: store.Version{
			Type: "Patient", ID: id, VersionID: v,
			LastUpdated: time.Date(2026, 12, 3, 10, 0, 0, int(v)*1000, time.UTC),
			Body:        []byte(body),
		},
		IfVersion: ifVersion,
	}
	for _, tk := range tokens {
		w.Tokens = append(w.Tokens, []byte(tk))
	}
	return w
}
