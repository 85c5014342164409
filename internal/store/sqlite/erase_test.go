package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// DeleteAccount is a crypto-erase: no revision of the deleted account's
// record (its wrapped key ring) may remain in the database or its WAL, while
// the store is open and after it is closed.
func TestDeleteAccountErasesKeyRing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kiln.db")
	files := []string{path, path + "-wal", path + "-shm", path + "-journal"}
	s := openAt(t, path, sqlite.Options{})
	ring := func(i int) []byte {
		return []byte(fmt.Sprintf("WRAPPED-ARK-REVISION-%02d-%s", i, bytes.Repeat([]byte("k"), 60)))
	}
	if _, err := s.CreateAccount(ctx, store.Account{Name: "doomed", CreatedAt: time.Now(), Data: ring(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount(ctx, store.Account{Name: "kept", CreatedAt: time.Now(), Data: []byte("KEPT-RING")}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := s.UpdateAccount(ctx, "doomed", ring(i), int64(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(ctx, "doomed", []store.Write{{Version: store.Version{Type: "Patient", ID: fmt.Sprint(i), VersionID: 1, LastUpdated: time.Now(), Body: []byte("sealed")}}}); err != nil {
			t.Fatal(err)
		}
	}
	needles := [][]byte{[]byte("WRAPPED-ARK-REVISION")}
	// The oracle: before the delete the scan finds the ring.
	if found, _ := storetest.FindStrings(files, needles); len(found) == 0 {
		t.Fatal("the key ring is not in the files before the delete: the scan cannot see it")
	}
	if err := s.DeleteAccount(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	storetest.ScanForStrings(t, files, needles)
	s.Close()
	storetest.ScanForStrings(t, files, needles)
	if found, _ := storetest.FindStrings(files, [][]byte{[]byte("KEPT-RING")}); len(found) == 0 {
		t.Error("the other account's ring is gone")
	}
}
