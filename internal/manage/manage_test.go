package manage_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// account is the management API's account document (DESIGN.md §5).
type account struct {
	Name        string    `json:"name"`
	FHIRBaseURL string    `json:"fhirBaseUrl"`
	CreatedAt   time.Time `json:"createdAt"`
	Status      string    `json:"status"`
	Encryption  struct {
		KeySource string `json:"keySource"`
		KeyURI    string `json:"keyUri"`
		KeyStatus string `json:"keyStatus"`
	} `json:"encryption"`
}

func decode[T any](t *testing.T, r *servertest.Response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode: %v: %s", err, r)
	}
	return v
}

// mgmtError checks a management error: status and a JSON body {"error":{"code","message"}}.
func mgmtError(t *testing.T, r *servertest.Response, status int) string {
	t.Helper()
	r.Want(t, status)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("want an error document with code and message: %s", r)
	}
	return e.Error.Code
}

func TestAccountLifecycle(t *testing.T) {
	in := servertest.New(t, server.Options{})
	before := time.Now().Add(-time.Second)

	r := in.Do(t, "PUT", "/management/accounts/clinic-one", nil).Want(t, http.StatusCreated)
	a := decode[account](t, r)
	if a.Name != "clinic-one" || a.FHIRBaseURL != in.Base("clinic-one") || a.Status != "Active" ||
		a.Encryption.KeySource != "service" || a.Encryption.KeyStatus != "Active" || a.CreatedAt.Before(before) {
		t.Errorf("created account: %+v", a)
	}
	if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, "/management/accounts/clinic-one") {
		t.Errorf("Location %q", loc)
	}
	// An explicit service key source is the same thing.
	b := decode[account](t, in.Do(t, "PUT", "/management/accounts/clinic-two", `{"encryption":{"keySource":"service"}}`).Want(t, 201))
	if b.Encryption.KeySource != "service" {
		t.Errorf("clinic-two: %+v", b)
	}

	got := decode[account](t, in.Do(t, "GET", "/management/accounts/clinic-one", nil).Want(t, 200))
	if got.Name != a.Name || !got.CreatedAt.Equal(a.CreatedAt) || got.FHIRBaseURL != a.FHIRBaseURL {
		t.Errorf("get = %+v, want %+v", got, a)
	}
	list := decode[struct{ Value []account }](t, in.Do(t, "GET", "/management/accounts", nil).Want(t, 200))
	names := map[string]bool{}
	for _, x := range list.Value {
		names[x.Name] = true
	}
	for _, n := range []string{"default", "clinic-one", "clinic-two"} {
		if !names[n] {
			t.Errorf("list lacks %s: %+v", n, list.Value)
		}
	}
	// The new account serves FHIR at once.
	in.Do(t, "POST", "/fhir/clinic-one/Patient", `{"resourceType":"Patient"}`).Want(t, 201)
	in.Do(t, "GET", "/fhir/clinic-one/metadata", nil).Want(t, 200)

	mgmtError(t, in.Do(t, "PUT", "/management/accounts/clinic-one", nil), http.StatusConflict)
	mgmtError(t, in.Do(t, "GET", "/management/accounts/no-such-one", nil), http.StatusNotFound)
	mgmtError(t, in.Do(t, "DELETE", "/management/accounts/no-such-one", nil), http.StatusNotFound)
	mgmtError(t, in.Do(t, "PATCH", "/management/accounts/no-such-one", `{"encryption":{"keySource":"service"}}`), http.StatusNotFound)

	// keySource is fixed at creation.
	mgmtError(t, in.Do(t, "PATCH", "/management/accounts/clinic-one", `{"encryption":{"keySource":"customer"}}`), http.StatusConflict)
	same := decode[account](t, in.Do(t, "PATCH", "/management/accounts/clinic-one", `{"encryption":{"keySource":"service"}}`).Want(t, 200))
	if same.Encryption.KeySource != "service" {
		t.Errorf("PATCH with the same keySource: %+v", same)
	}

	in.Do(t, "DELETE", "/management/accounts/clinic-one", nil).Want(t, http.StatusNoContent)
	mgmtError(t, in.Do(t, "GET", "/management/accounts/clinic-one", nil), http.StatusNotFound)
	in.Do(t, "GET", "/fhir/clinic-one/metadata", nil).Outcome(t, http.StatusNotFound)
	mgmtError(t, in.Do(t, "DELETE", "/management/accounts/clinic-one", nil), http.StatusNotFound)
}

func TestAccountNames(t *testing.T) {
	in := servertest.New(t, server.Options{})
	for _, n := range []string{"abc", "a-b", "a1", "clinic-2026", "x" + strings.Repeat("y", 61) + "z"} {
		if len(n) < 3 {
			continue
		}
		t.Run("valid "+n, func(t *testing.T) {
			in.Do(t, "PUT", "/management/accounts/"+n, nil).Want(t, 201)
		})
	}
	for _, n := range []string{"ab", "Upper", "-abc", "abc-", "a_b", "1abc", "a.b", "a%20b", "ab%2Fcd",
		"x" + strings.Repeat("y", 62) + "z", "caf%C3%A9"} {
		t.Run("invalid "+n, func(t *testing.T) {
			mgmtError(t, in.Do(t, "PUT", "/management/accounts/"+n, nil), http.StatusBadRequest)
		})
	}
	for _, n := range []string{"system", "management", "metadata", "health", "admin"} {
		t.Run("reserved "+n, func(t *testing.T) {
			mgmtError(t, in.Do(t, "PUT", "/management/accounts/"+n, nil), http.StatusBadRequest)
		})
	}
	for name, body := range map[string]string{
		"bad keySource":    `{"encryption":{"keySource":"bogus"}}`,
		"unknown field":    `{"colour":"blue"}`,
		"malformed":        `{"encryption":`,
		"customer no key":  `{"encryption":{"keySource":"customer"}}`,
		"wrong JSON types": `{"encryption":{"keySource":7}}`,
		"trailing data":    `{"encryption":{"keySource":"service"}} trailing`,
		"two documents":    `{} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			mgmtError(t, in.Do(t, "PUT", "/management/accounts/body-test", body), http.StatusBadRequest)
			mgmtError(t, in.Do(t, "GET", "/management/accounts/body-test", nil), http.StatusNotFound)
		})
	}
}

// TestSystemAccountProtected: the system account holds the audit trail of
// key events; the management API must not delete it (it refuses to create it).
func TestSystemAccountProtected(t *testing.T) {
	in := servertest.New(t, server.Options{})
	r := in.Do(t, "DELETE", "/management/accounts/system", nil)
	if r.Status == http.StatusNoContent {
		t.Fatalf("DELETE /management/accounts/system → 204: the reserved system account (audit trail) can be " +
			"crypto-erased through the API")
	}
	if r.Status < 400 || r.Status >= 500 {
		t.Fatalf("DELETE of the system account: want a 4xx refusal: %s", r)
	}
	mgmtError(t, r, r.Status)
	in.Do(t, "GET", "/management/accounts/system", nil).Want(t, 200, 404) // visible or hidden, but still there:
	in.Do(t, "PUT", "/management/accounts/system", nil).Want(t, 400)
}

// TestAccountIsolation: the same ids in two accounts are two resources, and
// nothing of one account shows in the other.
func TestAccountIsolation(t *testing.T) {
	in := servertest.New(t, server.Options{})
	for _, n := range []string{"north", "south"} {
		in.Do(t, "PUT", "/management/accounts/"+n, nil).Want(t, 201)
	}
	in.Do(t, "PUT", "/fhir/north/Patient/shared", `{"resourceType":"Patient","id":"shared","name":[{"family":"Northman"}]}`).Want(t, 201)
	in.Do(t, "PUT", "/fhir/north/Patient/shared", `{"resourceType":"Patient","id":"shared","name":[{"family":"Northman2"}]}`).Want(t, 200)
	in.Do(t, "PUT", "/fhir/south/Patient/shared", `{"resourceType":"Patient","id":"shared","name":[{"family":"Southey"}]}`).Want(t, 201)
	in.Do(t, "PUT", "/fhir/north/Patient/only-north", `{"resourceType":"Patient","id":"only-north"}`).Want(t, 201)

	n := in.Do(t, "GET", "/fhir/north/Patient/shared", nil).Want(t, 200)
	s := in.Do(t, "GET", "/fhir/south/Patient/shared", nil).Want(t, 200)
	if !strings.Contains(string(n.Body), "Northman2") || !strings.Contains(string(s.Body), "Southey") || n.Header.Get("ETag") != `W/"2"` || s.Header.Get("ETag") != `W/"1"` {
		t.Errorf("north %s\nsouth %s", n, s)
	}
	in.Do(t, "GET", "/fhir/south/Patient/only-north", nil).Outcome(t, 404)
	in.Do(t, "GET", "/fhir/south/Patient/shared/_history/2", nil).Outcome(t, 404)
	for acct, want := range map[string]int{"north": 3, "south": 1} {
		h := decode[struct{ Total int }](t, in.Do(t, "GET", "/fhir/"+acct+"/_history", nil).Want(t, 200))
		if h.Total != want {
			t.Errorf("%s system history total %d, want %d", acct, h.Total, want)
		}
	}
	// A delete in one account leaves the other alone.
	in.Do(t, "DELETE", "/fhir/south/Patient/shared", nil).Want(t, 200, 204)
	in.Do(t, "GET", "/fhir/north/Patient/shared", nil).Want(t, 200)
}

// TestAccountDeleteErasesData: after DELETE, the account's data cannot be
// reached, and an account re-created with the same name starts empty.
func TestAccountDeleteErasesData(t *testing.T) {
	in := servertest.New(t, server.Options{})
	in.Do(t, "PUT", "/management/accounts/doomed", nil).Want(t, 201)
	in.Do(t, "PUT", "/fhir/doomed/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Gone"}]}`).Want(t, 201)
	in.Do(t, "POST", "/fhir/doomed/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`).Want(t, 201)

	in.Do(t, "DELETE", "/management/accounts/doomed", nil).Want(t, 204)
	in.Do(t, "GET", "/fhir/doomed/Patient/p1", nil).Outcome(t, 404)

	in.Do(t, "PUT", "/management/accounts/doomed", nil).Want(t, 201)
	in.Do(t, "GET", "/fhir/doomed/Patient/p1", nil).Outcome(t, 404)
	in.Do(t, "GET", "/fhir/doomed/Patient/p1/_history/1", nil).Outcome(t, 404)
	h := decode[struct {
		Total int
		Entry []any
	}](t, in.Do(t, "GET", "/fhir/doomed/_history", nil).Want(t, 200))
	if h.Total != 0 || len(h.Entry) != 0 {
		t.Errorf("re-created account sees %d old versions", h.Total)
	}
	// The re-created account works normally, from version 1.
	r := in.Do(t, "PUT", "/fhir/doomed/Patient/p1", `{"resourceType":"Patient","id":"p1"}`).Want(t, 201)
	if r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("first write in the re-created account: ETag %q", r.Header.Get("ETag"))
	}
}

func TestHealth(t *testing.T) {
	in := servertest.New(t, server.Options{})
	h := decode[struct{ Status, Store string }](t, in.Do(t, "GET", "/health", nil).Want(t, 200))
	if h.Status != "Healthy" || h.Store != "ok" {
		t.Errorf("health: %+v", h)
	}
	mgmtError(t, in.Do(t, "GET", "/management/nothing-here", nil), 404)
	r := in.Do(t, "POST", "/management/accounts", nil)
	if r.Status != http.StatusMethodNotAllowed && r.Status != 404 {
		t.Errorf("POST /management/accounts: %s", r)
	}
}

// TestDeleteAccountUnderLoad deletes an account while clients write to and
// read from it: every request must get a success or a 404 (the account
// vanished), never a 5xx (nor a 403 claiming lost customer-key access for a
// service-key account), and afterwards the account is gone.
func TestDeleteAccountUnderLoad(t *testing.T) {
	in := servertest.New(t, server.Options{})
	in.Do(t, "PUT", "/management/accounts/vanishing", nil).Want(t, 201)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		stats = map[int]int{}
		bad   []string
	)
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("p%d", i%5)
				var r *servertest.Response
				var err error
				switch i % 3 {
				case 0:
					r, err = in.Try("PUT", "/fhir/vanishing/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","name":[{"family":"G`+fmt.Sprint(g, i)+`"}]}`)
				case 1:
					r, err = in.Try("GET", "/fhir/vanishing/Patient/"+id, nil)
				default:
					r, err = in.Try("GET", "/fhir/vanishing/_history?_count=5", nil)
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				stats[r.Status]++
				if r.Status >= 500 || r.Status == 403 {
					bad = append(bad, r.String())
				}
				mu.Unlock()
			}
		}(g)
	}
	time.Sleep(300 * time.Millisecond)
	in.Do(t, "DELETE", "/management/accounts/vanishing", nil).Want(t, 204)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("statuses: %v", stats)
	in.Do(t, "GET", "/fhir/vanishing/Patient/p0", nil).Outcome(t, 404)
	// A re-created account sees none of what raced with the delete.
	in.Do(t, "PUT", "/management/accounts/vanishing", nil).Want(t, 201)
	h := decode[struct{ Total int }](t, in.Do(t, "GET", "/fhir/vanishing/_history", nil).Want(t, 200))
	if h.Total != 0 {
		t.Errorf("re-created account sees %d versions written around the delete", h.Total)
	}
	if len(bad) > 0 {
		t.Errorf("%d requests racing DELETE /management/accounts/{name} got a 5xx or 403 instead of 404; first: %s",
			len(bad), bad[0])
	}
}
