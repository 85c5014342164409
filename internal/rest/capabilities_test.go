package rest_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCapabilityStatement checks /metadata against what the server does and
// against the server's own R4 validator (a CapabilityStatement is a
// resource: it must be valid R4).
func TestCapabilityStatement(t *testing.T) {
	t.Parallel()
	in := start(t)
	r := in.Do(t, "GET", base+"/metadata", nil).Want(t, 200)
	var cs struct {
		ResourceType string   `json:"resourceType"`
		FHIRVersion  string   `json:"fhirVersion"`
		Kind         string   `json:"kind"`
		Format       []string `json:"format"`
		Rest         []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
			} `json:"resource"`
			Interaction []struct {
				Code string `json:"code"`
			} `json:"interaction"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(r.Body, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
		t.Fatalf("not an R4 server CapabilityStatement: %.500s", r.Body)
	}
	if !strings.Contains(strings.Join(cs.Format, " "), "json") || strings.Contains(strings.Join(cs.Format, " "), "xml") {
		t.Errorf("format %v: want JSON only", cs.Format)
	}
	types := map[string]string{}
	for _, res := range cs.Rest[0].Resource {
		var codes []string
		for _, i := range res.Interaction {
			codes = append(codes, i.Code)
		}
		types[res.Type] = " " + strings.Join(codes, " ") + " "
	}
	for _, typ := range []string{"Patient", "Observation", "AuditEvent"} {
		for _, want := range []string{"read", "vread", "update", "delete", "create", "history-instance", "history-type"} {
			if !strings.Contains(types[typ], " "+want+" ") {
				t.Errorf("%s lacks interaction %s: %q", typ, want, types[typ])
			}
		}
	}
	if len(types) < 140 {
		t.Errorf("only %d resource types listed; R4 has 145 concrete ones", len(types))
	}
	if _, ok := types["DomainResource"]; ok {
		t.Errorf("abstract DomainResource listed")
	}
	sys := ""
	for _, i := range cs.Rest[0].Interaction {
		sys += i.Code + " "
	}
	if !strings.Contains(sys, "history-system") {
		t.Errorf("system interactions %q lack history-system", sys)
	}
	in.Do(t, "GET", base+"/metadata?mode=terminology", nil).Outcome(t, 400)
	in.Do(t, "HEAD", base+"/metadata", nil).Want(t, 200)

	// The statement is valid R4: the server accepts it as a resource.
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "id")
	back := in.Do(t, "POST", base+"/CapabilityStatement", m)
	if back.Status != 201 {
		t.Errorf("the server's own validator rejects its CapabilityStatement: %.1500s", back.Body)
	}
}
