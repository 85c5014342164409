package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
)

// baseURL is the test cluster's URL from KILN_TEST_POSTGRES; tests skip
// without it.
func baseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KILN_TEST_POSTGRES")
	if u == "" {
		t.Skip("KILN_TEST_POSTGRES is not set: start a cluster with `bash .ci/postgres.sh start && . /tmp/kiln-postgres/env` to test the PostgreSQL engine")
	}
	return u
}

func randomName(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "kiln_t_" + hex.EncodeToString(b[:])
}

// admin runs one statement on the test cluster's own database.
func admin(t testing.TB, rawURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// freshSchema creates an empty schema in the test database and returns a
// URL whose search_path selects it. It is dropped when the test ends.
func freshSchema(t testing.TB) string {
	t.Helper()
	base := baseURL(t)
	name := randomName(t)
	admin(t, base, "CREATE SCHEMA "+name)
	t.Cleanup(func() { admin(t, base, "DROP SCHEMA "+name+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("KILN_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// freshDatabase creates an empty database and returns its URL. It is
// dropped when the test ends.
func freshDatabase(t testing.TB) string {
	t.Helper()
	base := baseURL(t)
	name := randomName(t)
	admin(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, base, "DROP DATABASE "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("KILN_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func open(t testing.TB, u string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
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
