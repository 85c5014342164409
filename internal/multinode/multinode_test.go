package multinode_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store/postgres"
	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
)

// interval is every node's --key-check-interval.
const interval = time.Second

// slack is what a status change may take beyond one check interval: the
// probe itself (TLS round trips to the vault), the row write, the
// notification and the polling of this test.
const slack = 750 * time.Millisecond

// cluster is three kiln serve processes on one database, with a
// stand-alone vault whose principal "kiln" they all authenticate as.
type cluster struct {
	bin   string
	db    string
	vault *vaultProc
	nodes []*node
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	db := pgtest.FreshDatabase(t) // skips when KILN_TEST_POSTGRES is unset
	bin := buildKiln(t)
	v := startVault(t, bin)
	tokenFile := filepath.Join(t.TempDir(), "kiln-token")
	tok := strings.TrimSpace(v.admin(t, "vault", "token", "create", "kiln"))
	if tok == "" {
		t.Fatal("vault token create printed no token")
	}
	writeFile(t, tokenFile, tok+"\n")
	c := &cluster{bin: bin, db: db, vault: v}
	var dirs []string
	for i := 0; i < n; i++ {
		dirs = append(dirs, t.TempDir())
	}
	cfg := func(i int) nodeConfig {
		return nodeConfig{bin: bin, store: db, data: dirs[i], tokenFile: tokenFile, ca: v.ca, interval: interval}
	}
	// The first node creates the schema, the service key and the built-in
	// accounts; the others get its service key before they start.
	c.nodes = append(c.nodes, startNode(t, "node1", cfg(0)))
	copyServiceKey(t, dirs[0], dirs[1:]...)
	for i := 1; i < n; i++ {
		c.nodes = append(c.nodes, startNode(t, fmt.Sprintf("node%d", i+1), cfg(i)))
	}
	return c
}

// TestMultiNode runs three nodes on one PostgreSQL database.
func TestMultiNode(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process integration test is not short")
	}
	c := startCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	t.Run("WriteOnOneNodeReadsOnAnother", func(t *testing.T) {
		r := n1.want(t, 201, "POST", "/fhir/default/Patient", patient("Crossnode", "mn-1"))
		id, _ := r.json(t)["id"].(string)
		for _, n := range []*node{n2, n3} {
			got := n.want(t, 200, "GET", "/fhir/default/Patient/"+id, nil).json(t)
			if family(got) != "Crossnode" {
				t.Fatalf("%s read %v", n.name, got)
			}
		}
		// An update on node 2 is the current version on node 3, and node 1's
		// stale If-Match loses (ETag checks hold across nodes).
		upd := patient("Crossnode2", "mn-1")
		upd["id"] = id
		n2.want(t, 200, "PUT", "/fhir/default/Patient/"+id, upd, "If-Match", `W/"1"`)
		got := n3.want(t, 200, "GET", "/fhir/default/Patient/"+id, nil)
		if family(got.json(t)) != "Crossnode2" || got.header.Get("ETag") != `W/"2"` {
			t.Fatalf("node3 after node2's update: %s (ETag %s)", got, got.header.Get("ETag"))
		}
		upd["name"] = []any{map[string]any{"family": "Stale"}}
		n1.want(t, 412, "PUT", "/fhir/default/Patient/"+id, upd, "If-Match", `W/"1"`)
		// History written by two nodes reads the same everywhere.
		for _, n := range c.nodes {
			h := n.want(t, 200, "GET", "/fhir/default/Patient/"+id+"/_history", nil).json(t)
			if e, _ := h["entry"].([]any); len(e) != 2 {
				t.Fatalf("%s history has %d entries, want 2", n.name, len(e))
			}
		}
	})

	t.Run("RacingConditionalCreatesYieldOne", func(t *testing.T) {
		create := conditionalCreate(t, n1)
		const perNode = 4
		var created, matched, other atomic.Int64
		var wg sync.WaitGroup
		var mu sync.Mutex
		var unexpected []string
		for _, n := range c.nodes {
			for g := 0; g < perNode; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, detail := create(n, "urn:kiln:mn|race-1")
					switch status {
					case 201:
						created.Add(1)
					case 200:
						matched.Add(1)
					default:
						other.Add(1)
						mu.Lock()
						unexpected = append(unexpected, n.name+": "+detail)
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		t.Logf("%d racing conditional creates on %d nodes: %d created, %d matched the existing one, %d other", perNode*len(c.nodes), len(c.nodes), created.Load(), matched.Load(), other.Load())
		if created.Load() != 1 || other.Load() != 0 {
			t.Fatalf("want exactly one create and no errors; unexpected: %v", unexpected)
		}
		for _, n := range c.nodes {
			b := n.want(t, 200, "GET", "/fhir/default/Patient?identifier=urn:kiln:mn|race-1", nil).json(t)
			if e, _ := b["entry"].([]any); len(e) != 1 {
				t.Fatalf("%s finds %d resources with the identifier, want 1", n.name, len(e))
			}
		}
	})

	t.Run("CustomerKey", func(t *testing.T) {
		customerKey(t, c)
	})
}

func customerKey(t *testing.T, c *cluster) {
	v := c.vault
	n1, n2 := c.nodes[0], c.nodes[1]
	v.admin(t, "vault", "policy", "set", "kiln", "get,wrapKey,unwrapKey")
	v1 := kidVersion(t, v.admin(t, "key", "create", "mncmk"))
	keyURI := v.url + "/keys/mncmk"
	enc := n1.want(t, 201, "PUT", "/management/accounts/acme", map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": keyURI}}).json(t)["encryption"].(map[string]any)
	if enc["keyVersion"] != v1 {
		t.Fatalf("created with %v, want version %s", enc, v1)
	}
	var ids []string
	for i := 0; i < 12; i++ {
		n := c.nodes[i%len(c.nodes)]
		r := n.want(t, 201, "POST", "/fhir/acme/Patient", patient(fmt.Sprintf("Cmk%d", i), ""))
		ids = append(ids, r.json(t)["id"].(string))
	}
	for _, n := range c.nodes { // every node reads every resource (and caches the account's keys)
		for _, id := range ids {
			n.want(t, 200, "GET", "/fhir/acme/Patient/"+id, nil)
		}
	}

	st := pgtest.Open(t, c.db, postgres.Options{NoNotify: true})
	rev := func() int64 {
		a, err := st.GetAccount(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		return a.Rev
	}

	t.Run("RotationRewrapsExactlyOnce", func(t *testing.T) {
		// Load on every node across the rotations: zero errors.
		stop := make(chan struct{})
		var ops, errs atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for i, n := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					var r response
					var err error
					if k%3 == 0 {
						r, err = n.try("POST", "/fhir/acme/Patient", patient("Loadrot", ""))
					} else {
						r, err = n.try("GET", "/fhir/acme/Patient/"+ids[(i+k)%len(ids)], nil)
					}
					ops.Add(1)
					if err != nil || r.status >= 300 {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v %s", n.name, err, r))
					}
				}
			}()
		}
		for round := 1; round <= 3; round++ {
			before := rev()
			newV := kidVersion(t, v.admin(t, "key", "rotate", "mncmk"))
			// Force the race: every node checks the key at the same moment.
			var cw sync.WaitGroup
			for _, n := range c.nodes {
				cw.Add(1)
				go func() {
					defer cw.Done()
					if r, err := n.try("POST", "/management/accounts/acme/encryption/check", nil); err != nil || r.status != 200 {
						t.Errorf("%s check: %v %s", n.name, err, r)
					}
				}()
			}
			cw.Wait()
			lat := waitAll(t, c.nodes, 2*interval+slack, time.Now(), func(n *node) bool {
				r, err := n.try("GET", "/management/accounts/acme", nil)
				var a struct {
					Encryption struct {
						KeyVersion string `json:"keyVersion"`
					} `json:"encryption"`
				}
				return err == nil && jsonUnmarshal(r.body, &a) == nil && a.Encryption.KeyVersion == newV
			})
			// Let every monitor run at least twice more: none may rewrap again.
			time.Sleep(2*interval + 200*time.Millisecond)
			var rotated int
			waitAll(t, c.nodes[:1], 5*time.Second, time.Now(), func(n *node) bool {
				rotated = n.auditActions(t, "acme", "key-rotated", newV)
				return rotated >= 1
			})
			after := rev()
			t.Logf("rotation %d to %s: on every node after %v; key-rotated events: %d; account Rev %d -> %d", round, newV, lat, rotated, before, after)
			if rotated != 1 {
				t.Errorf("rotation %d: %d successful key-rotated events, want exactly 1", round, rotated)
			}
			if after != before+1 {
				t.Errorf("rotation %d: account row Rev went %d -> %d, want exactly one compare-and-swap", round, before, after)
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("%d requests across 3 rotations, %d failed", ops.Load(), errs.Load())
		if errs.Load() != 0 {
			t.Errorf("requests failed during rotation: %v", firstErr.Load())
		}
	})

	t.Run("RevocationAndRestoreReachEveryNode", func(t *testing.T) {
		start := time.Now()
		v.admin(t, "vault", "policy", "remove", "kiln")
		lat := waitAll(t, c.nodes, interval+slack, start, func(n *node) bool {
			r, err := n.try("GET", "/fhir/acme/Patient/"+ids[0], nil)
			return err == nil && r.status == 403
		})
		t.Logf("revocation (policy removed) refused reads on every node after %v (interval %v)", lat, interval)
		checkSpread(t, "revocation", lat)
		for _, n := range c.nodes {
			r := n.do(t, "POST", "/fhir/acme/Patient", patient("Whilerevoked", ""))
			if r.status != 403 || !strings.Contains(string(r.body), "cmk-access-lost") {
				t.Fatalf("%s write while revoked: %s", n.name, r)
			}
			if e := n.encryption(t, "acme"); e["keyStatus"] != "Revoked" || e["keyStatusReason"] != "PermissionDenied" {
				t.Fatalf("%s status while revoked: %v", n.name, e)
			}
		}
		// The service-key account is unaffected.
		n2.want(t, 200, "GET", "/fhir/default/metadata", nil)
		n2.want(t, 201, "POST", "/fhir/default/Patient", patient("Unaffected", ""))

		start = time.Now()
		v.admin(t, "vault", "policy", "set", "kiln", "get,wrapKey,unwrapKey")
		lat = waitAll(t, c.nodes, interval+slack, start, func(n *node) bool {
			r, err := n.try("GET", "/fhir/acme/Patient/"+ids[0], nil)
			return err == nil && r.status == 200
		})
		t.Logf("restore (policy granted) served reads on every node after %v (interval %v)", lat, interval)
		checkSpread(t, "restore", lat)
		for _, n := range c.nodes {
			for _, id := range ids {
				n.want(t, 200, "GET", "/fhir/acme/Patient/"+id, nil)
			}
			if e := n.encryption(t, "acme"); e["keyStatus"] != "Active" {
				t.Fatalf("%s status after restore: %v", n.name, e)
			}
		}
	})
}

// conditionalCreate returns a function that creates a Patient with the
// given identifier unless one exists, and answers 201 (created) or 200
// (matched). It uses POST with If-None-Exist, or a transaction Bundle
// entry with ifNoneExist, whichever the server supports; it skips t when
// neither is.
func conditionalCreate(t *testing.T, probe *node) func(n *node, ident string) (int, string) {
	t.Helper()
	body := func(ident string) map[string]any {
		sys, val, _ := strings.Cut(ident, "|")
		p := patient("Conditional", "")
		p["identifier"] = []any{map[string]any{"system": sys, "value": val}}
		return p
	}
	direct := func(n *node, ident string) (int, string) {
		r, err := n.try("POST", "/fhir/default/Patient", body(ident), "If-None-Exist", "identifier="+ident)
		if err != nil {
			return 0, err.Error()
		}
		return r.status, r.String()
	}
	viaBundle := func(n *node, ident string) (int, string) {
		b := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
			"fullUrl": "urn:uuid:6d0f1f5e-0e0b-4a55-9d59-1b8f3d2c0a11", "resource": body(ident),
			"request": map[string]any{"method": "POST", "url": "Patient", "ifNoneExist": "identifier=" + ident},
		}}}
		r, err := n.try("POST", "/fhir/default", b)
		if err != nil {
			return 0, err.Error()
		}
		if r.status != 200 {
			return r.status, r.String()
		}
		var out struct {
			Entry []struct {
				Response struct {
					Status string `json:"status"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := jsonUnmarshal(r.body, &out); err != nil || len(out.Entry) != 1 {
			return 0, "bad transaction-response: " + r.String()
		}
		var code int
		fmt.Sscanf(out.Entry[0].Response.Status, "%d", &code)
		return code, r.String()
	}
	// Probe with an identifier of its own: create, then match.
	for _, f := range []struct {
		name string
		fn   func(*node, string) (int, string)
	}{{"If-None-Exist", direct}, {"transaction ifNoneExist", viaBundle}} {
		ident := "urn:kiln:mn|probe-" + strings.ReplaceAll(f.name, " ", "-")
		s1, d1 := f.fn(probe, ident)
		if s1 != 201 {
			t.Logf("conditional create by %s not available: %s", f.name, d1)
			continue
		}
		if s2, d2 := f.fn(probe, ident); s2 != 200 {
			t.Fatalf("conditional create by %s: the second call did not match the first: %s", f.name, d2)
		}
		t.Logf("conditional create by %s", f.name)
		return f.fn
	}
	t.Skip("conditional create is not supported yet (neither POST If-None-Exist nor a transaction entry's ifNoneExist): nothing to race")
	return nil
}

// checkSpread fails t when the nodes saw a status change far apart. Each
// node's monitor ticks at its own phase, so by polling alone the spread is
// up to one interval; with the change notified (LISTEN/NOTIFY) the other
// nodes follow the first within milliseconds.
func checkSpread(t *testing.T, what string, lat []time.Duration) {
	t.Helper()
	lo, hi := lat[0], lat[0]
	for _, d := range lat {
		lo, hi = min(lo, d), max(hi, d)
	}
	t.Logf("%s: spread between the first and the last node %v", what, hi-lo)
	if hi-lo > 300*time.Millisecond {
		t.Errorf("%s reached the nodes %v apart: the change did not propagate by notification", what, hi-lo)
	}
}
