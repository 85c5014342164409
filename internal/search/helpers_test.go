package search_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// env is a running server with helpers for search tests.
type env struct {
	t    testing.TB
	inst *servertest.Instance
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return &env{t: t, inst: servertest.New(t, server.Options{SQLiteSync: "NORMAL"})}
}

const base = "/fhir/default"

// put stores a resource with its id (JSON text or map).
func (e *env) put(res any) {
	e.t.Helper()
	var m map[string]any
	switch x := res.(type) {
	case string:
		if err := json.Unmarshal([]byte(x), &m); err != nil {
			e.t.Fatalf("bad fixture %s: %v", x, err)
		}
	case map[string]any:
		m = x
	}
	typ, id := m["resourceType"].(string), m["id"].(string)
	e.inst.Do(e.t, "PUT", base+"/"+typ+"/"+id, m).Want(e.t, 200, 201)
}

// search runs GET base/path and returns the bundle.
func (e *env) search(t testing.TB, path string, hdr ...string) map[string]any {
	t.Helper()
	return e.inst.Do(t, "GET", base+"/"+path, nil, hdr...).Want(t, 200).JSON(t)
}

// ids returns the "Type/id" of the match entries of a search.
func (e *env) ids(t testing.TB, path string) []string {
	t.Helper()
	return matchIDs(e.search(t, path))
}

func matchIDs(b map[string]any) []string {
	out := []string{}
	entries, _ := b["entry"].([]any)
	for _, x := range entries {
		en := x.(map[string]any)
		if s, _ := en["search"].(map[string]any); s != nil && s["mode"] != "match" {
			continue
		}
		r := en["resource"].(map[string]any)
		out = append(out, fmt.Sprintf("%s/%s", r["resourceType"], r["id"]))
	}
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func eq(a, b []string) bool {
	return strings.Join(sorted(a), ",") == strings.Join(sorted(b), ",")
}

func q(s string) string { return url.PathEscape(s) }
