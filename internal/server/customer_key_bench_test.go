package server_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkKeyLifecycle measures, with the real built-in vault over TLS and
// a 1 s key-check interval, how long revocation and restore take to be
// observed by a client polling every 10 ms, how long a rotation takes to be
// picked up, how many requests fail while it happens under load (must be
// 0), and what the customer layer costs on the first request after a
// restart. Each iteration is one rotate/revoke/restore cycle.
//
//	go test ./internal/server -run '^$' -bench KeyLifecycle -benchtime 5x
func BenchmarkKeyLifecycle(b *testing.B) {
	dir := b.TempDir()
	k := startKilnB(b, dir)
	v := k.vault
	v.grant("get", "wrapKey", "unwrapKey")
	v.createKey("bench")
	if r := k.do("PUT", "/management/accounts/bench", map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": v.keyURI("bench")}}); r.status != 201 {
		b.Fatalf("create: %d %s", r.status, r.body)
	}
	id := mustCreate(b, k, "bench")
	defID := mustCreate(b, k, "default")
	poll := func(path string, want int) time.Duration {
		start := time.Now()
		for k.do("GET", path, nil).status != want {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("%s never answered %d", path, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	var revoke, restore, rotate time.Duration
	var failed, total atomic.Int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Rotation under a read/write load.
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{}
				for j := 0; !stop.Load(); j++ {
					var r resp
					if j%2 == 0 {
						r = callB(c, "GET", k.ts.URL+"/fhir/bench/Patient/"+id, nil)
					} else {
						r = callB(c, "POST", k.ts.URL+"/fhir/bench/Patient", patient(j))
					}
					total.Add(1)
					if r.status >= 300 {
						failed.Add(1)
					}
				}
			}()
		}
		newVersion := v.rotate("bench")
		start := time.Now()
		for {
			if enc := k.do("GET", "/management/accounts/bench", nil).jsonB(b)["encryption"].(map[string]any); enc["keyVersion"] == newVersion {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		rotate += time.Since(start)
		stop.Store(true)
		wg.Wait()

		v.revoke()
		revoke += poll("/fhir/bench/Patient/"+id, 403)
		v.grant("get", "wrapKey", "unwrapKey")
		restore += poll("/fhir/bench/Patient/"+id, 200)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(revoke.Milliseconds())/n, "ms-to-revoke")
	b.ReportMetric(float64(restore.Milliseconds())/n, "ms-to-restore")
	b.ReportMetric(float64(rotate.Milliseconds())/n, "ms-to-pick-up-rotation")
	b.ReportMetric(float64(failed.Load()), "failed-during-rotation")
	b.ReportMetric(float64(total.Load())/n, "requests-during-rotation")

	// First request after a restart: customer-key account (unwrap through
	// the vault) against the service-key account.
	var cust, svc time.Duration
	const restarts = 3
	for i := 0; i < restarts; i++ {
		k = k.restartB(b)
		t0 := time.Now()
		if r := k.do("GET", "/fhir/default/Patient/"+defID, nil); r.status != 200 {
			b.Fatalf("default after restart: %d", r.status)
		}
		svc += time.Since(t0)
		t0 = time.Now()
		if r := k.do("GET", "/fhir/bench/Patient/"+id, nil); r.status != 200 {
			b.Fatalf("customer account after restart: %d", r.status)
		}
		cust += time.Since(t0)
	}
	b.ReportMetric(float64(svc.Microseconds())/restarts/1000, "ms-first-read-service-key")
	b.ReportMetric(float64(cust.Microseconds())/restarts/1000, "ms-first-read-customer-key")
}

func startKilnB(b *testing.B, dir string) *kiln { return startKiln(b, dir, freePort(b)) }

func (k *kiln) restartB(b *testing.B) *kiln { k.stop(); return startKiln(b, k.dir, k.addr) }

func (r resp) jsonB(b *testing.B) map[string]any { return r.json(b) }

func callB(c *http.Client, method, url string, body any) resp {
	return call(nopTB{}, c, method, url, body)
}

func mustCreate(b *testing.B, k *kiln, acct string) string {
	r := k.do("POST", "/fhir/"+acct+"/Patient", patient(1))
	if r.status != 201 {
		b.Fatalf("create in %s: %d %s", acct, r.status, r.body)
	}
	return r.json(b)["id"].(string)
}

// nopTB lets load goroutines call helpers without failing the benchmark
// from another goroutine; a transport error shows up as status 0.
type nopTB struct{}

func (nopTB) Helper()               {}
func (nopTB) Fatalf(string, ...any) {}
func (nopTB) TempDir() string       { return "" }
func (nopTB) Cleanup(func())        {}

func (nopTB) Fatal(...any) {}
