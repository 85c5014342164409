package rest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// base is the FHIR base path of the account every server starts with.
const base = "/fhir/default"

func start(t *testing.T) *servertest.Instance {
	t.Helper()
	return servertest.New(t, server.Options{})
}

// patient is a valid Patient with a distinctive family name.
func patient(id, family string) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": family, "given": []any{"Ada"}}},
		"gender":       "female",
		"birthDate":    "1970-01-02",
	}
	if id != "" {
		p["id"] = id
	}
	return p
}

// create POSTs body and returns the new id.
func create(t *testing.T, in *servertest.Instance, typ string, body any) (string, *servertest.Response) {
	t.Helper()
	r := in.Do(t, "POST", base+"/"+typ, body).Want(t, http.StatusCreated)
	id, _ := r.JSON(t)["id"].(string)
	if id == "" {
		t.Fatalf("created resource has no id: %s", r)
	}
	return id, r
}

// put PUTs body to typ/id.
func put(t *testing.T, in *servertest.Instance, typ, id string, body any, hdr ...string) *servertest.Response {
	t.Helper()
	return in.Do(t, "PUT", base+"/"+typ+"/"+id, body, hdr...)
}

func etag(v int) string { return fmt.Sprintf(`W/"%d"`, v) }

// metaOf returns meta.versionId and meta.lastUpdated of a resource.
func metaOf(t *testing.T, res map[string]any) (string, string) {
	t.Helper()
	m, ok := res["meta"].(map[string]any)
	if !ok {
		t.Fatalf("resource has no meta: %v", res)
	}
	v, _ := m["versionId"].(string)
	lu, _ := m["lastUpdated"].(string)
	return v, lu
}

// family returns name[0].family.
func family(res map[string]any) string {
	names, _ := res["name"].([]any)
	if len(names) == 0 {
		return ""
	}
	n, _ := names[0].(map[string]any)
	f, _ := n["family"].(string)
	return f
}

// instantRE is the FHIR instant syntax.
var instantRE = regexp.MustCompile(`^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)

func parseInstant(t *testing.T, s string) time.Time {
	t.Helper()
	if !instantRE.MatchString(s) {
		t.Fatalf("%q is not a FHIR instant", s)
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse instant %q: %v", s, err)
	}
	return ts
}

// entry is one history Bundle entry, reduced to what tests check.
type entry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		Status       string `json:"status"`
		Etag         string `json:"etag"`
		LastModified string `json:"lastModified"`
	} `json:"response"`
}

type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []entry `json:"entry"`
}

func (b bundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// getBundle GETs a Bundle of the given type.
func getBundle(t *testing.T, in *servertest.Instance, target, typ string) bundle {
	t.Helper()
	r := in.Do(t, "GET", target, nil).Want(t, 200)
	var b bundle
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("decode bundle: %v: %s", err, r)
	}
	if b.ResourceType != "Bundle" || b.Type != typ {
		t.Fatalf("want a %s Bundle: %s", typ, r)
	}
	return b
}

// key identifies one version in a history entry: Type/id/_history/v.
func (e entry) key(t *testing.T) string {
	t.Helper()
	i := strings.Index(e.FullURL, "/fhir/")
	if i < 0 || e.Response.Etag == "" {
		t.Fatalf("history entry lacks fullUrl or etag: %+v", e)
	}
	rest := e.FullURL[i+len("/fhir/"):]
	rest = rest[strings.IndexByte(rest, '/')+1:]
	return rest + "/_history/" + strings.Trim(strings.TrimPrefix(e.Response.Etag, "W/"), `"`)
}

// version returns the entry's version from its etag.
func (e entry) version(t *testing.T) int {
	t.Helper()
	var v int
	s := strings.Trim(strings.TrimPrefix(e.Response.Etag, "W/"), `"`)
	if _, err := fmt.Sscan(s, &v); err != nil {
		t.Fatalf("etag %q is not W/\"n\"", e.Response.Etag)
	}
	return v
}

// allHistory follows next links from target to the end and returns every entry.
func allHistory(t *testing.T, in *servertest.Instance, target string) []entry {
	t.Helper()
	var out []entry
	for page := 0; target != ""; page++ {
		if page > 10000 {
			t.Fatal("history paging does not end")
		}
		b := getBundle(t, in, target, "history")
		out = append(out, b.Entry...)
		target = b.link("next")
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
