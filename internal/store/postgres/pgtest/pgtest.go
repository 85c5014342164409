// Package pgtest gives tests of any package a throwaway PostgreSQL store:
// a fresh schema (or database) in the cluster named by KILN_TEST_POSTGRES,
// dropped when the test ends. Tests skip with a message when the variable
// is unset (start a cluster with .ci/postgres.sh).
//
// It is for tests only: it never touches a schema or database it did not
// create, and it names every one it creates kiln_t_<random>.
package pgtest

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
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// EnvVar names the environment variable that holds the test cluster's URL.
const EnvVar = "KILN_TEST_POSTGRES"

// URL returns the test cluster's URL, or skips t when EnvVar is unset.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvVar)
	if u == "" {
		t.Skip(EnvVar + " is not set: start a cluster with `bash .ci/postgres.sh start && . /tmp/kiln-postgres/env` to run the PostgreSQL tests")
	}
	return u
}

// Exec runs one statement on the database at dbURL, failing t on error.
func Exec(t testing.TB, dbURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func randomName(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "kiln_t_" + hex.EncodeToString(b[:])
}

// FreshSchema creates an empty schema in the test database and returns a
// URL whose search_path selects it. The schema is dropped at cleanup.
// Creating a schema takes milliseconds; prefer it to FreshDatabase.
func FreshSchema(t testing.TB) string {
	t.Helper()
	base := URL(t)
	name := randomName(t)
	Exec(t, base, "CREATE SCHEMA "+name)
	t.Cleanup(func() { Exec(t, base, "DROP SCHEMA "+name+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvVar, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// FreshDatabase creates an empty database and returns its URL. It is
// dropped at cleanup. Use it when a test needs a whole database, such as a
// pg_dump scan.
func FreshDatabase(t testing.TB) string {
	t.Helper()
	base := URL(t)
	name := randomName(t)
	Exec(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { Exec(t, base, "DROP DATABASE "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvVar, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open opens a store on dbURL with opts and closes it at cleanup.
func Open(t testing.TB, dbURL string, opts postgres.Options) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dbURL, opts)
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// NewStore returns a store on a fresh schema, closed and dropped at
// cleanup. Other packages' suites use it to run against PostgreSQL.
func NewStore(t testing.TB) *postgres.Store {
	t.Helper()
	return Open(t, FreshSchema(t), postgres.Options{})
}

// Engine describes the PostgreSQL engine for storetest.Run: each subtest
// gets a fresh schema, and handles are independent Stores on it.
func Engine() storetest.Engine {
	return storetest.Engine{
		NewDB: func(t *testing.T) storetest.Opener {
			u := FreshSchema(t)
			return func(t *testing.T) store.Store {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				s, err := postgres.Open(ctx, u, postgres.Options{})
				if err != nil {
					t.Fatalf("pgtest: open: %v", err)
				}
				return s
			}
		},
		LockAcrossHandles: true,
	}
}
