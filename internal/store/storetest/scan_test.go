package storetest

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/iotest"
)

func TestFindStringsReader(t *testing.T) {
	// Needles placed at the start, across the 1 MiB chunk boundary, twice
	// overlapping, and at the very end.
	data := bytes.Repeat([]byte{'.'}, 3<<20)
	put := func(off int, s string) { copy(data[off:], s) }
	put(0, "SMITHSON")
	put(1<<20-3, "SMITHSON")
	put(2<<20, "aaaa")
	put(len(data)-8, "SMITHSON")
	needles := [][]byte{[]byte("SMITHSON"), []byte("aaa"), []byte("absent"), nil}

	for _, r := range []struct {
		name string
		wrap func([]byte) *bytes.Reader
	}{{"whole", bytes.NewReader}} {
		got, err := FindStringsReader(r.name, iotest.HalfReader(r.wrap(data)), needles)
		if err != nil {
			t.Fatal(err)
		}
		var offs []int64
		for _, f := range got {
			offs = append(offs, f.Offset)
		}
		want := []int64{0, 1<<20 - 3, int64(len(data) - 8), 2 << 20, 2<<20 + 1}
		if !slices.Equal(offs, want) {
			t.Errorf("offsets = %v, want %v", offs, want)
		}
	}
}

func TestFindStringsFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "db")
	b := filepath.Join(dir, "db-wal")
	if err := os.WriteFile(a, []byte("nothing here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("xxPHI-NEEDLExx"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := FindStrings([]string{a, b, filepath.Join(dir, "missing")}, [][]byte{[]byte("PHI-NEEDLE")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Source != b || got[0].Offset != 2 {
		t.Errorf("FindStrings = %v", got)
	}
	ScanForStrings(t, []string{a}, [][]byte{[]byte("PHI-NEEDLE")})
}
