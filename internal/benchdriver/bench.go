package benchdriver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Scenarios lists the scenario names Run accepts.
var Scenarios = []string{"create", "read", "update", "search", "mixed", "transaction"}

// Config configures a Run. Base and Scenario are required.
type Config struct {
	// Base is the FHIR base URL, e.g. http://127.0.0.1:8080/fhir/default.
	Base     string
	Scenario string
	// Concurrency is the number of clients (default 4).
	Concurrency int
	// Duration is how long the measured phase runs (default 10s).
	Duration time.Duration
	// Seed makes the run reproducible (default 1).
	Seed uint64
	// Patients is the size of the population created before read,
	// update, search and mixed runs (default 100; each patient comes with
	// Encounters, Observations and Conditions).
	Patients int
	// Client sends requests (default: keep-alive client sized for Concurrency).
	Client *http.Client
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Result is what a Run measured.
type Result struct {
	Scenario    string
	Concurrency int
	Elapsed     time.Duration
	Requests    int64 // completed requests (errors included)
	Errors      int64 // transport errors and unexpected statuses
	Resources   int64 // resources written by successful creates, updates and transactions
	// Latency percentiles over all completed requests.
	P50, P95, P99, Max time.Duration
	// FirstErrors holds up to 10 error descriptions.
	FirstErrors []string
}

// RPS is completed requests per second.
func (r Result) RPS() float64 { return rate(r.Requests, r.Elapsed) }

// ResourcesPerSecond is written resources per second.
func (r Result) ResourcesPerSecond() float64 { return rate(r.Resources, r.Elapsed) }

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Print writes the result as a small report.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "scenario     %s\nconcurrency  %d\nduration     %s\nrequests     %d (%d errors)\nrequests/s   %.1f\n",
		r.Scenario, r.Concurrency, r.Elapsed.Round(time.Millisecond), r.Requests, r.Errors, r.RPS())
	if r.Resources > 0 {
		fmt.Fprintf(w, "resources/s  %.1f (%d resources)\n", r.ResourcesPerSecond(), r.Resources)
	}
	fmt.Fprintf(w, "latency      p50 %s  p95 %s  p99 %s  max %s\n", ms(r.P50), ms(r.P95), ms(r.P99), ms(r.Max))
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "error        %s\n", e)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

type runner struct {
	cfg  Config
	ids  []string // Patient ids of the population
	mu   sync.Mutex
	errs []string
}

// Run runs one scenario and returns its figures. It fails only when the
// scenario cannot run (bad config, the population cannot be created);
// failed requests during the measured phase are counted in the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Base == "" {
		return Result{}, errors.New("benchdriver: no FHIR base URL")
	}
	cfg.Base = strings.TrimRight(cfg.Base, "/")
	known := false
	for _, s := range Scenarios {
		known = known || s == cfg.Scenario
	}
	if !known {
		return Result{}, fmt.Errorf("benchdriver: unknown scenario %q (want one of %s)", cfg.Scenario, strings.Join(Scenarios, ", "))
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Patients <= 0 {
		cfg.Patients = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2,
		}}
	}
	r := &runner{cfg: cfg}
	if cfg.Scenario != "create" && cfg.Scenario != "transaction" {
		if err := r.populate(ctx); err != nil {
			return Result{}, err
		}
	}
	return r.measure(ctx), nil
}

// do sends one request and reads the answer.
func (r *runner) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	status, out, _, err := r.doHeader(ctx, method, path, body)
	return status, out, err
}

// doHeader is do that also returns the response headers.
func (r *runner) doHeader(ctx context.Context, method, path string, body []byte) (int, []byte, http.Header, error) {
	u := r.cfg.Base + "/" + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Prefer", "return=minimal")
	}
	for k, vs := range r.cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header, err
}

// populate creates cfg.Patients patients (with their clinical resources)
// and records the Patient ids.
func (r *runner) populate(ctx context.Context) error {
	g := NewGenerator(r.cfg.Seed ^ 0xabcdef)
	bundles := make([][]byte, r.cfg.Patients)
	for i := range bundles {
		b, _, err := g.PatientBundle(2, 3)
		if err != nil {
			return fmt.Errorf("benchdriver: generate: %w", err)
		}
		bundles[i] = b
	}
	ids := make([]string, len(bundles))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := 0
	for w := 0; w < r.cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(bundles) || ctx.Err() != nil {
					return
				}
				status, body, err := r.do(ctx, http.MethodPost, "", bundles[i])
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("HTTP %d: %.300s", status, body)
				}
				var id string
				if err == nil {
					id, err = firstPatientID(body)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("benchdriver: create the population: %w", err)
				}
				ids[i] = id
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	r.ids = ids
	return ctx.Err()
}

// firstPatientID finds the Patient id in a transaction-response.
func firstPatientID(body []byte) (string, error) {
	var b struct {
		Entry []struct {
			Response struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "", fmt.Errorf("transaction-response: %w", err)
	}
	for _, e := range b.Entry {
		loc := e.Response.Location
		if i := strings.Index(loc, "Patient/"); i >= 0 {
			parts := strings.Split(loc[i:], "/")
			return parts[1], nil
		}
	}
	return "", errors.New("transaction-response without a Patient location")
}

type sample struct {
	lat       time.Duration
	err       string
	resources int
}

// measure runs the clients for cfg.Duration.
func (r *runner) measure(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	lats := make([][]time.Duration, r.cfg.Concurrency)
	errs := make([]int64, r.cfg.Concurrency)
	res := make([]int64, r.cfg.Concurrency)
	start := r.cfg.Now()
	var wg sync.WaitGroup
	for w := 0; w < r.cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{r: r, g: NewGenerator(r.cfg.Seed + uint64(w)*7919),
				rng: rand.New(rand.NewPCG(r.cfg.Seed, uint64(w)+1))}
			for ctx.Err() == nil {
				t0 := r.cfg.Now()
				s := c.step(ctx, r.cfg.Scenario)
				if ctx.Err() != nil && s.err != "" {
					break // cut off by the end of the run: not a sample
				}
				lats[w] = append(lats[w], r.cfg.Now().Sub(t0))
				if s.err != "" {
					errs[w]++
					r.noteErr(s.err)
				}
				res[w] += int64(s.resources)
			}
		}()
	}
	wg.Wait()
	out := Result{Scenario: r.cfg.Scenario, Concurrency: r.cfg.Concurrency, Elapsed: r.cfg.Now().Sub(start), FirstErrors: r.errs}
	var all []time.Duration
	for w := range lats {
		all = append(all, lats[w]...)
		out.Errors += errs[w]
		out.Resources += res[w]
	}
	out.Requests = int64(len(all))
	if len(all) > 0 {
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
		out.P50, out.P95, out.P99, out.Max = pct(0.50), pct(0.95), pct(0.99), all[len(all)-1]
	}
	return out
}

func (r *runner) noteErr(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, s)
	}
}

// client is one simulated user.
type client struct {
	r       *runner
	g       *Generator
	rng     *rand.Rand
	created []string // Patients this client created (mixed deletes them)
}

func (c *client) patientID() string { return c.r.ids[c.rng.IntN(len(c.r.ids))] }

func (c *client) expect(ctx context.Context, method, path string, body []byte, want ...int) (sample, []byte) {
	status, out, err := c.r.do(ctx, method, path, body)
	if err != nil {
		return sample{err: fmt.Sprintf("%s %s: %v", method, path, err)}, nil
	}
	for _, w := range want {
		if status == w {
			return sample{}, out
		}
	}
	return sample{err: fmt.Sprintf("%s %s: HTTP %d: %.200s", method, path, status, out)}, out
}

func (c *client) step(ctx context.Context, scenario string) sample {
	if scenario == "mixed" {
		switch p := c.rng.IntN(100); {
		case p < 50:
			scenario = "read"
		case p < 65:
			scenario = "create"
		case p < 80:
			scenario = "update"
		case p < 95:
			scenario = "search"
		default:
			scenario = "delete"
		}
	}
	switch scenario {
	case "create":
		body, _ := json.Marshal(c.g.Patient())
		status, out, hdr, err := c.r.doHeader(ctx, http.MethodPost, "Patient", body)
		if err != nil || status != http.StatusCreated {
			return sample{err: fmt.Sprintf("POST Patient: HTTP %d %v: %.200s", status, err, out)}
		}
		if id := createdID(hdr.Get("Location")); id != "" && len(c.created) < 10000 {
			c.created = append(c.created, id)
		}
		return sample{resources: 1}
	case "read":
		s, _ := c.expect(ctx, http.MethodGet, "Patient/"+c.patientID(), nil, http.StatusOK)
		return s
	case "update":
		id := c.patientID()
		p := c.g.Patient()
		p["id"] = id
		body, _ := json.Marshal(p)
		s, _ := c.expect(ctx, http.MethodPut, "Patient/"+id, body, http.StatusOK, http.StatusCreated)
		if s.err == "" {
			s.resources = 1
		}
		return s
	case "search":
		s, _ := c.expect(ctx, http.MethodGet, c.query(), nil, http.StatusOK)
		return s
	case "delete":
		if len(c.created) == 0 {
			return c.step(ctx, "read")
		}
		id := c.created[len(c.created)-1]
		c.created = c.created[:len(c.created)-1]
		s, _ := c.expect(ctx, http.MethodDelete, "Patient/"+id, nil, http.StatusOK, http.StatusNoContent)
		return s
	case "transaction":
		body, n, err := c.g.PatientBundle(3, 4)
		if err != nil {
			return sample{err: err.Error()}
		}
		s, _ := c.expect(ctx, http.MethodPost, "", body, http.StatusOK)
		if s.err == "" {
			s.resources = n
		}
		return s
	}
	return sample{err: "unknown scenario " + scenario}
}

// createdID extracts the id from a Location such as
// http://host/fhir/acct/Patient/123/_history/1.
func createdID(loc string) string {
	i := strings.Index(loc, "Patient/")
	if i < 0 {
		return ""
	}
	parts := strings.Split(loc[i:], "/")
	return parts[1]
}

// query returns one of the search shapes, seeded.
func (c *client) query() string {
	switch c.rng.IntN(4) {
	case 0:
		return "Patient?family=" + url.QueryEscape(families[c.rng.IntN(len(families))]) + "&_count=10"
	case 1:
		v := vitals[c.rng.IntN(len(vitals))]
		return "Observation?subject=Patient/" + c.patientID() + "&code=" + url.QueryEscape("http://loinc.org|"+v.code)
	case 2:
		return fmt.Sprintf("Patient?birthdate=ge%d-01-01&gender=female&_count=10", 1930+c.rng.IntN(80))
	default:
		return "Condition?subject=Patient/" + c.patientID()
	}
}
