package fhir_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
)

// stdDecode is the oracle for valid input: encoding/json with UseNumber.
func stdDecode(t testing.TB, data []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return v
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	docs := []string{
		validPatient,
		validObservation,
		`{"a":"\u00e9\ud83d\ude00\n\t\"\\\/","b":[1,-0,1.50,2e10,-3.25E-7,true,false,null,{}],"c":{"d":[]}}`,
		`  {"x" : 1 }  ` + "\n",
	}
	for _, s := range loadPackageOptional(t, 300) {
		docs = append(docs, string(s.data))
	}
	for i, doc := range docs {
		got, err := fhir.Decode([]byte(doc))
		if err != nil {
			t.Fatalf("doc %d: Decode: %v", i, err)
		}
		if want := stdDecode(t, []byte(doc)); !reflect.DeepEqual(got, want) {
			t.Fatalf("doc %d: Decode differs from encoding/json", i)
		}
	}
}

// loadPackageOptional returns up to n official examples, or none when the
// package is absent (the test then relies on the built-in documents).
func loadPackageOptional(t *testing.T, n int) []sample {
	var out []sample
	t.Run("package", func(t *testing.T) { out = loadPackage(t) })
	if len(out) > n {
		step := len(out) / n
		var sub []sample
		for i := 0; i < len(out); i += step {
			sub = append(sub, out[i])
		}
		out = sub
	}
	return out
}

func TestDecodeKeepsDecimalText(t *testing.T) {
	v, err := fhir.Decode([]byte(`{"value": 72.10, "big": 12345678901234567890.000}`))
	if err != nil {
		t.Fatal(err)
	}
	if v["value"] != json.Number("72.10") || v["big"] != json.Number("12345678901234567890.000") {
		t.Fatalf("numbers not preserved: %#v", v)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name, in   string
		line, col  int
		msgContain string
	}{
		{"empty", ``, 1, 1, "empty input"},
		{"not-object", `[1]`, 1, 1, "must be a JSON object"},
		{"duplicate-key", "{\"a\": 1,\n  \"a\": 2}", 2, 3, `duplicate key "a"`},
		{"duplicate-key-nested", `{"a": {"b": 1, "b": 1}}`, 1, 16, `duplicate key "b"`},
		{"trailing-data", `{"a": 1} {}`, 1, 10, "after the top-level object"},
		{"trailing-comma", `{"a": 1,}`, 1, 9, "expected a string key"},
		{"invalid-utf8", "{\"a\": \"\xff\"}", 1, 8, "invalid UTF-8"},
		{"invalid-utf8-key", "{\"\xc3\": 1}", 1, 3, "invalid UTF-8"},
		{"lone-surrogate", `{"a": "\ud800x"}`, 1, 8, "surrogate"},
		{"control-char", "{\"a\": \"x\x01\"}", 1, 9, "control character"},
		{"bad-escape", `{"a": "\q"}`, 1, 8, "invalid escape"},
		{"bad-number", `{"a": 01}`, 1, 8, "expected ',' or '}'"},
		{"bad-number-dot", `{"a": 1.}`, 1, 9, "digit after '.'"},
		{"bad-literal", `{"a": tru}`, 1, 7, "invalid literal"},
		{"unterminated", `{"a": "x`, 1, 9, "unterminated string"},
		{"missing-colon", `{"a" 1}`, 1, 6, "expected ':'"},
		{"deep", strings.Repeat(`{"a":`, fhir.MaxDepth+1) + "1" + strings.Repeat("}", fhir.MaxDepth+1), 1, 1 + 5*fhir.MaxDepth, "nesting deeper"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fhir.Decode([]byte(c.in))
			var de *fhir.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want *fhir.DecodeError", err, err)
			}
			if de.Line != c.line || de.Column != c.col || !strings.Contains(de.Msg, c.msgContain) {
				t.Fatalf("got line %d col %d msg %q, want line %d col %d containing %q", de.Line, de.Column, de.Msg, c.line, c.col, c.msgContain)
			}
			if !strings.HasPrefix(err.Error(), "fhir: invalid JSON at line") {
				t.Fatalf("error text %q", err.Error())
			}
		})
	}
}
