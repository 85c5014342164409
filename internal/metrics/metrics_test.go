package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/keys"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestKeyMetrics(t *testing.T) {
	m := New()
	m.KeyCheck("acme", nil, time.Millisecond)
	m.KeyCheck("acme", &keys.Error{Op: "probe", KeyURI: "k", Err: keys.ErrPermissionDenied}, time.Millisecond)
	m.Status("acme", accounts.StatusRevoked)
	m.Rewrap("acme")
	m.Unwrap("acme", nil, 3*time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		`kiln_key_checks_total{account="acme",result="ok"} 1`,
		`kiln_key_checks_total{account="acme",result="failed"} 1`,
		`kiln_key_check_failures_total{account="acme",reason="PermissionDenied"} 1`,
		`kiln_account_key_status{account="acme",status="Revoked"} 1`,
		`kiln_account_key_status{account="acme",status="Active"} 0`,
		`kiln_key_rewraps_total{account="acme"} 1`,
		`kiln_key_unwrap_seconds_count{result="ok"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	m.Forget("acme")
	if out := scrape(t, m); strings.Contains(out, `account="acme"`) {
		t.Error("Forget left series behind")
	}
}

func TestMiddlewareCountsStatus(t *testing.T) {
	m := New()
	h := m.Middleware("fhir", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	for i := 0; i < 3; i++ {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fhir/x", nil))
	}
	if out := scrape(t, m); !strings.Contains(out, fmt.Sprintf(`kiln_http_requests_total{api="fhir",code="403"} %d`, 3)) {
		t.Errorf("request counter wrong:\n%s", out)
	}
}
