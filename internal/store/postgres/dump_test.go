package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// DumpDatabase must show every byte the database holds: a string written
// in clear into a body (a bytea column, which pg_dump prints as hex), a
// token and the account name are all found in the dump.
func TestDumpDatabaseSeesBytea(t *testing.T) {
	u := freshDatabase(t)
	ctx := context.Background()
	s := open(t, u)
	mustAccount(t, s, "dump-acct")
	w := write("p", 1, 0, "clear body KILN-CANARY-Zq7\x00\xff", "KILN-TOKEN-8Hx")
	w.Sorts = []store.SortValue{{Slot: []byte("slot"), Value: []byte("KILN-SORT-4Wd")}}
	if _, err := s.Commit(ctx, "dump-acct", []store.Write{w}); err != nil {
		t.Fatal(err)
	}
	dump, err := postgres.DumpDatabase(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"KILN-CANARY-Zq7", "KILN-TOKEN-8Hx", "KILN-SORT-4Wd", "dump-acct", "kiln_versions"} {
		found, err := storetest.FindStringsReader("dump", bytes.NewReader(dump), [][]byte{[]byte(want)})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) == 0 {
			t.Errorf("%q is in the database but not found in the dump", want)
		}
	}
	dir, err := postgres.DataDirectory(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if want := os.Getenv("KILN_TEST_POSTGRES_DATA"); want != "" && dir != want {
		t.Errorf("DataDirectory = %q, want %q (from .ci/postgres.sh)", dir, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil && !errors.Is(err, fs.ErrPermission) {
		t.Errorf("DataDirectory %q is not a cluster directory: %v", dir, err)
	}
	if _, err := postgres.DumpDatabase(ctx, "postgres://postgres@127.0.0.1:1/nope?sslmode=disable&connect_timeout=2"); err == nil {
		t.Error("dump of an unreachable database succeeded")
	}
	if _, err := postgres.DumpDatabase(ctx, "host=x dbname=y"); err == nil {
		t.Error("dump of a non-URL succeeded")
	}
}

// No plaintext on PostgreSQL, at the store boundary: accounts are created by
// the real accounts registry (its document and wrapped key ring are what
// the store keeps), and bodies, tokens and sort values are sealed by the
// real seal package with that account's keys. The dump (with bytea
// decoded) holds none of the distinctive strings, though it does hold the
// allowed metadata. The end-to-end scan through the REST layer, and of the
// data directory, is the lead's integration test.
func TestNoPlaintextInDump(t *testing.T) {
	u := freshDatabase(t)
	ctx := context.Background()
	s := open(t, u)
	codec, err := seal.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := accounts.New(accounts.Config{
		Store:         s,
		Keys:          keys.NewRegistry(keys.NewLocal(t.TempDir(), rand.Reader)),
		ServiceKeyURI: "local:service",
		Codec:         codec,
		Rand:          rand.Reader,
	})
	if err != nil {
		t.Fatal(err)
	}
	const acct = "clinic-north"
	if _, err := reg.Create(ctx, accounts.Spec{Name: acct}); err != nil {
		t.Fatal(err)
	}
	k, err := reg.Keys(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"Zebediah", "Quattlebaum", "4471 Larkspur Hollow", "555-0199-8812", "hypokalemia-ZX"}
	var writes []store.Write
	for i, sec := range secrets {
		id := "pat-" + string(rune('a'+i))
		b := seal.Binding{Account: acct, Type: "Patient", ID: id, VersionID: 1, Purpose: "body"}
		body, err := k.Seal([]byte(`{"resourceType":"Patient","id":"`+id+`","name":[{"family":"`+sec+`"}]}`), b)
		if err != nil {
			t.Fatal(err)
		}
		sb := b
		sb.Purpose = "sort:family"
		sortVal, err := k.Seal([]byte(sec), sb)
		if err != nil {
			t.Fatal(err)
		}
		writes = append(writes, store.Write{
			Version: store.Version{Type: "Patient", ID: id, VersionID: 1, LastUpdated: time.Now(), Body: body},
			Tokens: [][]byte{
				k.Token("Patient", "family", "string", sec),
				k.Token("Patient", "family", "string", sec[:3]),
			},
			Sorts: []store.SortValue{{Slot: k.Token("Patient", "_sort", "slot", "family"), Value: sortVal}},
		})
	}
	if _, err := s.Commit(ctx, acct, writes); err != nil {
		t.Fatal(err)
	}
	dump, err := postgres.DumpDatabase(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	var needles [][]byte
	for _, sec := range secrets {
		needles = append(needles, []byte(sec))
	}
	storetest.ScanReaderForStrings(t, "pg_dump", bytes.NewReader(dump), needles)
	// The scan sees the data at all: allowed metadata is there.
	for _, meta := range []string{acct, "pat-c", "Patient"} {
		if !bytes.Contains(dump, []byte(meta)) {
			t.Errorf("metadata %q missing from the dump: the scan looked at the wrong data", meta)
		}
	}
}
