package storetest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
)

// Finding is one occurrence of a needle in scanned data.
type Finding struct {
	Source string // file path or the name given to FindStringsReader
	Offset int64  // byte offset of the occurrence
	Needle []byte
}

func (f Finding) String() string {
	return fmt.Sprintf("%q at %s+%d", f.Needle, f.Source, f.Offset)
}

// FindStrings reports every occurrence of every needle in the files at paths
// (database, WAL, shared memory, journal, key files...). A missing file is
// skipped; any other read error is returned. Empty needles are ignored.
func FindStrings(paths []string, needles [][]byte) ([]Finding, error) {
	var out []Finding
	for _, p := range paths {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("storetest: open %s: %w", p, err)
		}
		found, err := FindStringsReader(p, f, needles)
		f.Close()
		out = append(out, found...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// FindStringsReader reports every occurrence of every needle in r (a database
// dump, say), naming r as name in the findings. It reads r in chunks, so
// needles that straddle a chunk boundary are found too.
func FindStringsReader(name string, r io.Reader, needles [][]byte) ([]Finding, error) {
	maxLen := 0
	for _, n := range needles {
		maxLen = max(maxLen, len(n))
	}
	if maxLen == 0 {
		return nil, nil
	}
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk+maxLen)
	var base int64 // offset of buf[0] in r
	var out []Finding
	for {
		n, err := io.ReadFull(r, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+n]
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			return out, fmt.Errorf("storetest: read %s: %w", name, err)
		}
		// Occurrences starting at or after keep are left for the next round,
		// when the whole needle is in buf; the last round takes everything.
		keep := len(buf)
		if !eof {
			keep = len(buf) - (maxLen - 1)
		}
		for _, needle := range needles {
			if len(needle) == 0 {
				continue
			}
			for i := 0; i < keep; {
				j := bytes.Index(buf[i:], needle)
				if j < 0 || i+j >= keep {
					break
				}
				out = append(out, Finding{Source: name, Offset: base + int64(i+j), Needle: needle})
				i += j + 1
			}
		}
		if eof {
			return out, nil
		}
		rest := copy(buf, buf[keep:])
		base += int64(keep)
		buf = buf[:rest]
	}
}

// ScanForStrings fails t for every occurrence of a needle in the files at
// paths, naming the file and offset. Engines and the no-plaintext tests call
// it on every file of a stopped store with the distinctive strings they wrote.
func ScanForStrings(t testing.TB, paths []string, needles [][]byte) {
	t.Helper()
	found, err := FindStrings(paths, needles)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("plaintext found: %v", f)
	}
}

// ScanReaderForStrings is ScanForStrings for a stream such as a database dump.
func ScanReaderForStrings(t testing.TB, name string, r io.Reader, needles [][]byte) {
	t.Helper()
	found, err := FindStringsReader(name, r, needles)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("plaintext found: %v", f)
	}
}
