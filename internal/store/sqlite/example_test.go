package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
)

// A store round trip: create an account, commit a first version with its
// blind tokens, read it back and find it by token.
func Example() {
	dir, _ := os.MkdirTemp("", "kiln-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "kiln.db"), sqlite.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if _, err := s.CreateAccount(ctx, store.Account{Name: "default", CreatedAt: now, Data: []byte("wrapped key ring")}); err != nil {
		fmt.Println(err)
		return
	}
	token := []byte("0123456789abcdef") // a blind token from package seal
	seqs, err := s.Commit(ctx, "default", []store.Write{{
		Version:   store.Version{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: now, Body: []byte("sealed bytes")},
		IfVersion: 0, // must not exist yet
		Tokens:    [][]byte{token},
	}})
	fmt.Println(len(seqs), err)

	v, _ := s.Current(ctx, "default", store.Ref{Type: "Patient", ID: "p1"})
	fmt.Println(v.Type, v.ID, v.VersionID, v.LastUpdated.Format(time.RFC3339), string(v.Body))
	refs, _ := s.Lookup(ctx, "default", store.Match{Types: []string{"Patient"}, Clauses: [][][]byte{{token}}})
	fmt.Println(refs)

	// A second create of the same id fails its precondition.
	_, err = s.Commit(ctx, "default", []store.Write{{Version: store.Version{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: now}, IfVersion: 0}})
	fmt.Println(errors.Is(err, store.ErrConflict))
	// Output:
	// 1 <nil>
	// Patient p1 1 2026-12-03T12:00:00Z sealed bytes
	// [{Patient p1}]
	// true
}
