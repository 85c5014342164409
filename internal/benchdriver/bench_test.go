package benchdriver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/benchdriver"
	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// TestGeneratorReproducible: the same seed gives the same bundle; another
// seed a different one; every reference points at an entry's fullUrl.
func TestGeneratorReproducible(t *testing.T) {
	a, n, err := benchdriver.NewGenerator(7).PatientBundle(3, 4)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := benchdriver.NewGenerator(7).PatientBundle(3, 4)
	c, _, _ := benchdriver.NewGenerator(8).PatientBundle(3, 4)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("generator output is not a function of the seed")
	}
	if n != 1+3+3*4+2 {
		t.Fatalf("%d resources", n)
	}
	var bundle struct {
		Entry []struct {
			FullURL string `json:"fullUrl"`
		} `json:"entry"`
	}
	json.Unmarshal(a, &bundle)
	full := map[string]bool{}
	for _, e := range bundle.Entry {
		full[e.FullURL] = true
	}
	for _, part := range strings.Split(string(a), `"reference":"`)[1:] {
		ref := part[:strings.IndexByte(part, '"')]
		if !full[ref] {
			t.Fatalf("reference %s names no entry", ref)
		}
	}
}

// TestScenarios runs every scenario briefly against a real server: each
// completes requests, without errors, and reports ordered percentiles.
func TestScenarios(t *testing.T) {
	inst := servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
	for _, sc := range benchdriver.Scenarios {
		t.Run(sc, func(t *testing.T) {
			res, err := benchdriver.Run(context.Background(), benchdriver.Config{
				Base: inst.Base("default"), Scenario: sc, Concurrency: 2, Duration: 1500 * time.Millisecond, Patients: 5, Seed: 3,
			})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res.Print(&out)
			t.Log("\n" + out.String())
			if res.Requests == 0 || res.Errors != 0 {
				t.Fatalf("requests %d, errors %d: %v", res.Requests, res.Errors, res.FirstErrors)
			}
			if !(res.P50 <= res.P95 && res.P95 <= res.P99 && res.P99 <= res.Max && res.P50 > 0) {
				t.Fatalf("percentiles out of order: %+v", res)
			}
			if (sc == "create" || sc == "update" || sc == "transaction") && res.Resources == 0 {
				t.Fatalf("%s wrote no resources", sc)
			}
			if !strings.Contains(out.String(), "requests/s") || !strings.Contains(out.String(), "p99") {
				t.Fatalf("report: %s", out.String())
			}
		})
	}
	if _, err := benchdriver.Run(context.Background(), benchdriver.Config{Base: inst.Base("default"), Scenario: "nope"}); err == nil {
		t.Fatal("an unknown scenario ran")
	}
}
