package secret

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestBytesNeverPrints(t *testing.T) {
	s := New([]byte("hunter2-topsecret"))
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x %q", s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ K Bytes }{s}),
	} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "68756e74") {
			t.Fatalf("secret leaked: %q", out)
		}
	}
	j, err := json.Marshal(map[string]any{"k": s})
	if err != nil || strings.Contains(string(j), "hunter2") {
		t.Fatalf("json leaked: %s %v", j, err)
	}
}

func TestEqualAndWipe(t *testing.T) {
	raw := []byte{1, 2, 3}
	a, b := New(raw), New(raw)
	raw[0] = 9 // New copies
	if !a.Equal(b) || a.Expose()[0] != 1 {
		t.Fatal("copies should be equal and independent of the input")
	}
	a.Wipe()
	if a.Equal(b) || a.Expose()[0] != 0 {
		t.Fatal("wipe did not zero the secret")
	}
}
