package vault_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

type akvErr struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

// TestChallenge checks the 401 challenge that azkeys parses: a Bearer
// challenge whose authorization URL has a path segment (the tenant) and whose
// resource is AKV's.
func TestChallenge(t *testing.T) {
	tv := startVault(t, "", nil)
	var e akvErr
	resp, b := tv.do(t, "GET", "/keys/x?api-version=7.4", "", "", &e)
	if resp.StatusCode != 401 || e.Error.Code != "Unauthorized" || e.Error.Message == "" {
		t.Fatalf("unauthenticated: %d %s", resp.StatusCode, b)
	}
	want := `Bearer authorization="` + tv.URL() + `/kiln-vault", resource="https://vault.azure.net"`
	if got := resp.Header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("challenge %q, want %q", got, want)
	}
	resp, b = tv.do(t, "GET", "/keys/x?api-version=7.4", "kvt1.wrong", "", &e)
	if resp.StatusCode != 401 || e.Error.Code != "Unauthorized" || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("bad token: %d %s", resp.StatusCode, b)
	}
	// Basic auth is not a bearer token.
	req, _ := http.NewRequest("GET", tv.URL()+"/keys?api-version=7.4", nil)
	req.SetBasicAuth("admin", tv.admin)
	r2, err := tv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 401 {
		t.Fatalf("basic auth: %d", r2.StatusCode)
	}
}

// TestErrorShapes checks status codes and AKV error bodies for bad requests.
func TestErrorShapes(t *testing.T) {
	tv := startVault(t, "", nil)
	a := tv.admin
	var created struct {
		Key struct {
			KID string `json:"kid"`
			Kty string `json:"kty"`
		} `json:"key"`
		Attributes map[string]any `json:"attributes"`
	}
	resp, b := tv.do(t, "POST", "/keys/k1/create?api-version=7.4", a, `{"kty":"oct","key_size":256}`, &created)
	if resp.StatusCode != 200 || !regexp.MustCompile(`^`+regexp.QuoteMeta(tv.URL())+`/keys/k1/[0-9a-f]{32}$`).MatchString(created.Key.KID) {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	for _, f := range []string{"enabled", "created", "updated", "recoveryLevel", "recoverableDays"} {
		if _, ok := created.Attributes[f]; !ok {
			t.Errorf("attributes lack %q: %s", f, b)
		}
	}
	version := created.Key.KID[strings.LastIndex(created.Key.KID, "/")+1:]
	cases := []struct {
		name, method, path, body string
		status                   int
		code, inner              string
	}{
		{"missing api-version", "GET", "/keys/k1", "", 400, "BadParameter", ""},
		{"unknown api-version", "GET", "/keys/k1?api-version=banana", "", 400, "BadParameter", ""},
		{"unknown key", "GET", "/keys/nope?api-version=7.4", "", 404, "KeyNotFound", ""},
		{"unknown version", "GET", "/keys/k1/0123456789abcdef0123456789abcdef?api-version=7.4", "", 404, "KeyNotFound", ""},
		{"malformed version", "GET", "/keys/k1/xyz?api-version=7.4", "", 404, "KeyNotFound", ""},
		{"bad key name", "POST", "/keys/bad_name/create?api-version=7.4", `{"kty":"oct"}`, 400, "BadParameter", ""},
		{"bad json", "POST", "/keys/k2/create?api-version=7.4", `{"kty":`, 400, "BadParameter", ""},
		{"trailing data", "POST", "/keys/k2/create?api-version=7.4", `{"kty":"oct"} {}`, 400, "BadParameter", ""},
		{"EC unsupported", "POST", "/keys/k2/create?api-version=7.4", `{"kty":"EC","crv":"P-256"}`, 400, "BadParameter", ""},
		{"bad RSA size", "POST", "/keys/k2/create?api-version=7.4", `{"kty":"RSA","key_size":1024}`, 400, "BadParameter", ""},
		{"missing kty", "POST", "/keys/k2/create?api-version=7.4", `{}`, 400, "BadParameter", ""},
		{"exportable refused", "POST", "/keys/k2/create?api-version=7.4", `{"kty":"oct","attributes":{"exportable":true}}`, 400, "BadParameter", ""},
		{"bad alg", "POST", "/keys/k1/" + version + "/wrapkey?api-version=7.4", `{"alg":"RSA1_5","value":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}`, 400, "BadParameter", ""},
		{"bad base64", "POST", "/keys/k1/" + version + "/wrapkey?api-version=7.4", `{"alg":"A256KW","value":"***"}`, 400, "BadParameter", ""},
		{"missing value", "POST", "/keys/k1/" + version + "/wrapkey?api-version=7.4", `{"alg":"A256KW"}`, 400, "BadParameter", ""},
		{"short A256KW", "POST", "/keys/k1/" + version + "/wrapkey?api-version=7.4", `{"alg":"A256KW","value":"AAECAwQFBgc"}`, 400, "BadParameter", ""},
		{"tampered unwrap", "POST", "/keys/k1/" + version + "/unwrapkey?api-version=7.4", `{"alg":"A256KW","value":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw"}`, 400, "BadParameter", ""},
		{"unsupported op", "POST", "/keys/k1/" + version + "/sign?api-version=7.4", `{"alg":"RS256","value":"AA"}`, 400, "BadParameter", ""},
		{"import unsupported", "PUT", "/keys/k3?api-version=7.4", `{"key":{}}`, 400, "BadParameter", ""},
		{"wrong method", "GET", "/keys/k1/create?api-version=7.4", "", 405, "MethodNotAllowed", ""},
		{"bad maxresults", "GET", "/keys?api-version=7.4&maxresults=99", "", 400, "BadParameter", ""},
		{"bad skiptoken", "GET", "/keys/k1/versions?api-version=7.4&$skiptoken=eHl6", "", 400, "BadParameter", ""},
		{"unknown deleted", "GET", "/deletedkeys/nope?api-version=7.4", "", 404, "KeyNotFound", ""},
		{"purge unknown", "DELETE", "/deletedkeys/nope?api-version=7.4", "", 404, "KeyNotFound", ""},
		{"unknown path", "GET", "/secrets/x?api-version=7.4", "", 404, "NotFound", ""},
		{"bad permission", "PUT", "/policies/app", `{"permissions":["get","fly"]}`, 400, "BadParameter", ""},
		{"policy unknown field", "PUT", "/policies/app", `{"perms":["get"]}`, 400, "BadParameter", ""},
		{"bad principal", "POST", "/principals/bad%20name/tokens", "", 400, "BadParameter", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e akvErr
			resp, b := tv.do(t, c.method, c.path, a, c.body, &e)
			if resp.StatusCode != c.status || e.Error.Code != c.code || e.Error.Message == "" {
				t.Fatalf("%s %s: %d %s, want %d %s", c.method, c.path, resp.StatusCode, b, c.status, c.code)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
		})
	}
	// A disabled key refuses wrap with 403 Forbidden / KeyDisabled.
	resp, b = tv.do(t, "PATCH", "/keys/k1/"+version+"?api-version=7.4", a, `{"attributes":{"enabled":false}}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("disable: %d %s", resp.StatusCode, b)
	}
	var e akvErr
	resp, b = tv.do(t, "POST", "/keys/k1/wrapkey?api-version=7.4", a, `{"alg":"A256KW","value":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}`, &e)
	if resp.StatusCode != 403 || e.Error.Code != "Forbidden" || e.Error.InnerError == nil || e.Error.InnerError.Code != "KeyDisabled" {
		t.Fatalf("disabled: %d %s", resp.StatusCode, b)
	}
	// key_ops restricts operations.
	resp, b = tv.do(t, "POST", "/keys/k4/create?api-version=7.4", a, `{"kty":"oct","key_ops":["wrapKey"]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("create k4: %d %s", resp.StatusCode, b)
	}
	var w struct{ KID, Value string }
	resp, b = tv.do(t, "POST", "/keys/k4//wrapkey?api-version=7.4", a, `{"alg":"A256KW","value":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}`, &w)
	if resp.StatusCode != 200 || w.Value == "" || strings.Contains(w.Value, "=") {
		t.Fatalf("wrap k4: %d %s", resp.StatusCode, b)
	}
	body, _ := json.Marshal(map[string]string{"alg": "A256KW", "value": w.Value})
	resp, b = tv.do(t, "POST", "/keys/k4//unwrapkey?api-version=7.4", a, string(body), &e)
	if resp.StatusCode != 403 || e.Error.InnerError == nil || e.Error.InnerError.Code != "KeyOperationForbidden" {
		t.Fatalf("unwrap without key_op: %d %s", resp.StatusCode, b)
	}
	// Policies list.
	tv.principal(t, "app", []string{"unwrapKey", "GET"})
	var pl struct {
		Value []struct {
			Principal   string
			Permissions []string
		}
	}
	tv.do(t, "GET", "/policies", a, "", &pl)
	if len(pl.Value) != 1 || pl.Value[0].Principal != "app" || strings.Join(pl.Value[0].Permissions, ",") != "get,unwrapKey" {
		t.Fatalf("policies %+v", pl)
	}
}
