package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestAppendTokensMatchesToken checks the batch path against Token (whose
// format TestTokenGoldenVectors pins) for every input, including the golden
// ones, values given in parts and as bytes, and inputs longer than one
// SHA-256 block.
func TestAppendTokensMatchesToken(t *testing.T) {
	k := testKeys(t, "acme", 7, g1)
	type in struct{ typ, param, kind, value string }
	long := strings.Repeat("Ωmega-", 40)
	ins := []in{
		{"Patient", "name", "s", "smith"},
		{"Observation", "code", "t", "http://loinc.org|8867-4"},
		{"Patient", "name", "", ""},
		{"Patient", "na", "", "me"},
		{"Patient", "n", "a", "me"},
		{"Observation", "component-code-value-quantity$1", "qc", long},
	}
	var b TokenBatch
	for round := 0; round < 2; round++ { // the second round reuses the batch
		b.Reset()
		for i, c := range ins {
			switch i % 3 {
			case 0:
				b.Add(c.typ, c.param, c.kind, c.value)
			case 1:
				h := len(c.value) / 2
				b.Add(c.typ, c.param, c.kind, c.value[:h], "", c.value[h:])
			default:
				b.AddBytes(c.typ, c.param, c.kind, []byte(c.value))
			}
		}
		// Fixed inputs (no value): the second round takes them from the
		// cache, and must still agree with Token.
		b.AddFixed("Patient", "name", "m")
		b.AddFixed("Observation", "code", "sort")
		ins := append(ins[:len(ins):len(ins)], in{"Patient", "name", "m", ""}, in{"Observation", "code", "sort", ""})
		if b.Len() != len(ins) {
			t.Fatalf("Len %d, want %d", b.Len(), len(ins))
		}
		prefix := []byte("keep")
		out, err := k.AppendTokens(append([]byte(nil), prefix...), &b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out, prefix) || len(out) != len(prefix)+len(ins)*TokenSize {
			t.Fatalf("round %d: output of %d bytes", round, len(out))
		}
		for i, c := range ins {
			got := out[len(prefix)+i*TokenSize:][:TokenSize]
			if want := k.Token(c.typ, c.param, c.kind, c.value); !bytes.Equal(got, want) {
				t.Errorf("round %d input %d %+v: token %x, want %x", round, i, c, got, want)
			}
		}
		if got := hex.EncodeToString(out[len(prefix):][:TokenSize]); got != goldenSmith {
			t.Errorf("batch token %s, want golden %s", got, goldenSmith)
		}
	}
	k.Wipe()
	out, err := k.AppendTokens([]byte("x"), &b)
	if !errors.Is(err, ErrWiped) || string(out) != "x" {
		t.Fatalf("AppendTokens after wipe: %q, %v; want dst unchanged and ErrWiped", out, err)
	}
}

// TestTokensDoNotAllocate pins the point of the batch path: computing the
// tokens of a filled batch into a large enough buffer allocates nothing.
func TestTokensDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	k := testKeys(t, "acme", 7, g1)
	var b TokenBatch
	for i := 0; i < 100; i++ {
		b.Add("Observation", "code", "tsc", "http://loinc.org", "|", fmt.Sprint(i))
		b.AddFixed("Observation", fmt.Sprint("p", i), "m")
	}
	dst := make([]byte, 0, b.Len()*TokenSize)
	k.AppendTokens(dst, &b) // warm the MAC pool and the fixed-token cache
	if n := testing.AllocsPerRun(20, func() {
		if _, err := k.AppendTokens(dst, &b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendTokens allocates %v times per batch", n)
	}
	tok := make([]byte, 0, TokenSize)
	if n := testing.AllocsPerRun(20, func() { k.AppendToken(tok, "Patient", "name", "s^", "smi") }); n != 0 {
		t.Errorf("AppendToken allocates %v times per token", n)
	}
}

// BenchmarkTokens measures one blind token, alone and in a batch of 100.
func BenchmarkTokens(b *testing.B) {
	k := testKeys(b, "acme", 7, g1)
	b.Run("AppendToken", func(b *testing.B) {
		dst := make([]byte, 0, TokenSize)
		for i := 0; i < b.N; i++ {
			dst = k.AppendToken(dst[:0], "Observation", "code", "tsc", "http://loinc.org|8867-4")
		}
	})
	b.Run("AppendTokens", func(b *testing.B) {
		var batch TokenBatch
		for i := 0; i < 100; i++ {
			batch.Add("Observation", "code", "tsc", "http://loinc.org|", fmt.Sprint(8867+i))
		}
		dst := make([]byte, 0, batch.Len()*TokenSize)
		for i := 0; i < b.N; i += batch.Len() {
			k.AppendTokens(dst[:0], &batch)
		}
	})
}

// TestSmallValuesStillCompress checks that values under 1 KiB (sealed with
// the encoder without entropy coding) are still compressed when they
// repeat themselves, as reference sort values do, and open again.
func TestSmallValuesStillCompress(t *testing.T) {
	k := testKeys(t, "acme", 7, g1)
	b := Binding{Account: "acme", Type: "Observation", ID: "o1", Purpose: "sort:subject"}
	ref := "Patient/4bd4c1b3-0ee7-4f86-a6f0-4b0ba4b7e3d1"
	for _, n := range []int{3, 30} { // 141 and 1410 bytes: each encoder once
		pt := []byte(strings.Repeat(ref, n))
		sealed, err := k.Seal(pt, b)
		if err != nil {
			t.Fatal(err)
		}
		if sealed[1]&FlagZstd == 0 || len(sealed) >= len(pt)+Overhead {
			t.Errorf("%d bytes: sealed to %d bytes with flags %#x; want compressed", len(pt), len(sealed), sealed[1])
		}
		got, err := k.Open(sealed, b)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: open: %v", len(pt), err)
		}
	}
}

// TestSealUncompressed checks that SealUncompressed never sets FlagZstd,
// that Open reads its output, and that it stays bound like Seal.
func TestSealUncompressed(t *testing.T) {
	k := testKeys(t, "acme", 7, g1)
	b := Binding{Account: "acme", Type: "Observation", ID: "o1", Purpose: "sort:subject"}
	for _, pt := range [][]byte{nil, []byte("x"), []byte(strings.Repeat("Patient/p1", 100))} {
		sealed, err := k.SealUncompressed(pt, b)
		if err != nil {
			t.Fatal(err)
		}
		if sealed[1] != 0 || len(sealed) != len(pt)+Overhead {
			t.Errorf("%d bytes: sealed to %d bytes with flags %#x; want %d bytes, no flags", len(pt), len(sealed), sealed[1], len(pt)+Overhead)
		}
		got, err := k.Open(sealed, b)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: open: %v", len(pt), err)
		}
		moved := b
		moved.ID = "o2"
		if _, err := k.Open(sealed, moved); !errors.Is(err, ErrOpen) {
			t.Errorf("%d bytes: opened under another binding: %v", len(pt), err)
		}
	}
	k.Wipe()
	if _, err := k.SealUncompressed([]byte("x"), b); !errors.Is(err, ErrWiped) {
		t.Fatalf("after wipe: %v, want ErrWiped", err)
	}
}

// TestTokensConcurrent runs batches with fixed inputs from several
// goroutines while the keys are wiped (run it with -race): every batch
// either fails with ErrWiped or yields the tokens Token gave before.
func TestTokensConcurrent(t *testing.T) {
	k := testKeys(t, "acme", 7, g1)
	want := append(k.Token("Patient", "name", "m", ""), k.Token("Patient", "name", "s^", "smi")...)
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			var b TokenBatch
			for i := 0; i < 200; i++ {
				b.Reset()
				b.AddFixed("Patient", "name", "m")
				b.Add("Patient", "name", "s^", "smi")
				out, err := k.AppendTokens(nil, &b)
				if errors.Is(err, ErrWiped) {
					break
				}
				if err != nil || !bytes.Equal(out, want) {
					done <- fmt.Errorf("batch %d: %x, %v", i, out, err)
					return
				}
			}
			done <- nil
		}()
	}
	k.Wipe()
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
