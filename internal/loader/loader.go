package loader

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Defaults of Config.
const (
	DefaultConcurrency = 4
	DefaultBatchSize   = 500
	DefaultRetries     = 5
	DefaultBackoff     = 250 * time.Millisecond
)

// Config configures a Load. Base is required.
type Config struct {
	// Base is the FHIR base URL, e.g. http://127.0.0.1:8080/fhir/default.
	Base string
	// Client sends the requests (default: a client with keep-alive for
	// Concurrency connections and no overall timeout).
	Client *http.Client
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Concurrency is the number of Bundles in flight (default 4).
	Concurrency int
	// BatchSize is the number of NDJSON lines per transaction (default 500).
	BatchSize int
	// Batch sends NDJSON groups as batch Bundles (per-resource outcomes)
	// instead of transactions.
	Batch bool
	// Retries bounds the retries of one Bundle after a transient failure
	// (default 5; negative: none).
	Retries int
	// Backoff is the first retry delay, doubled per retry, with jitter
	// (default 250ms, at most 30s).
	Backoff time.Duration
	// Progress receives a progress line (rewritten in place with \r) every
	// ProgressEvery; nil disables it.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Rand is the jitter source (default: seeded from Seed).
	Rand *rand.Rand
	Seed uint64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Summary is the result of a Load.
type Summary struct {
	Files       int // files given
	FailedFiles int // files that could not be read or are not FHIR JSON at all
	Bundles     int // Bundles sent (and answered)
	Resources   int // resources the server accepted (2xx entries)
	// Failed counts resources that were not loaded: those in rejected
	// Bundles, failed batch entries and NDJSON lines that are not a JSON
	// resource.
	Failed  int
	Retries int // retried requests
	Elapsed time.Duration
	// Errors holds the first failures, one line each.
	Errors []string
}

// Rate is accepted resources per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Resources) / s.Elapsed.Seconds()
}

// OK reports whether everything given was loaded.
func (s Summary) OK() bool { return s.Failed == 0 && s.FailedFiles == 0 }

// String renders the summary on one line.
func (s Summary) String() string {
	files := ""
	if s.FailedFiles > 0 {
		files = fmt.Sprintf(" (%d unreadable)", s.FailedFiles)
	}
	return fmt.Sprintf("loaded %d resources from %d files%s in %d bundles in %s (%.0f resources/s); %d failed, %d retries",
		s.Resources, s.Files, files, s.Bundles, s.Elapsed.Round(time.Millisecond), s.Rate(), s.Failed, s.Retries)
}

const maxErrors = 20

// Expand turns files, directories (searched recursively) and glob
// patterns into the sorted list of loadable files (.json, .json.gz,
// .ndjson, .ndjson.gz).
func Expand(patterns []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	addFile := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, pat := range patterns {
		matches, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("loader: pattern %q: %w", pat, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("loader: %q matches no file", pat)
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("loader: %w", err)
			}
			if !st.IsDir() {
				if kindOf(m) == "" {
					return nil, fmt.Errorf("loader: %s: want .json, .json.gz, .ndjson or .ndjson.gz", m)
				}
				addFile(m)
				continue
			}
			err = filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.Type().IsRegular() && kindOf(p) != "" {
					addFile(p)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("loader: walk %s: %w", m, err)
			}
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, errors.New("loader: no .json, .json.gz, .ndjson or .ndjson.gz files found")
	}
	return out, nil
}

// tierTypes are the resource types other resources refer to, by tier:
// NDJSON files named after them (Type.ndjson, Type.000.ndjson.gz, as bulk
// $export and Synthea write them) load before the rest.
var tierTypes = [][]string{
	{"Organization", "Location", "Practitioner", "Medication", "Substance", "Device"},
	{"PractitionerRole", "HealthcareService", "Endpoint", "Patient", "Group"},
}

// Tiers splits files into load tiers: NDJSON files of referenced types
// first (tierTypes), then everything else, each tier in file order.
func Tiers(files []string) [][]string {
	out := make([][]string, len(tierTypes)+1)
	for _, f := range files {
		t := len(tierTypes)
		if kindOf(f) == "ndjson" {
			typ, _, _ := strings.Cut(filepath.Base(f), ".")
		search:
			for i, types := range tierTypes {
				for _, x := range types {
					if strings.EqualFold(x, typ) {
						t = i
						break search
					}
				}
			}
		}
		out[t] = append(out[t], f)
	}
	var tiers [][]string
	for _, t := range out {
		if len(t) > 0 {
			tiers = append(tiers, t)
		}
	}
	return tiers
}

// kindOf returns "bundle", "ndjson" or "" by file name.
func kindOf(name string) string {
	n := strings.TrimSuffix(strings.ToLower(name), ".gz")
	switch {
	case strings.HasSuffix(n, ".ndjson"):
		return "ndjson"
	case strings.HasSuffix(n, ".json"):
		return "bundle"
	}
	return ""
}

// job is one Bundle to send.
type job struct {
	name      string
	body      []byte
	resources int
	bytes     int64 // share of the input bytes, for the ETA
}

type loader struct {
	cfg Config
	// progress
	totalBytes         int64
	doneBytes, doneRes atomic.Int64
	failed, retries    atomic.Int64
	failedFiles        atomic.Int64
	bundles            atomic.Int64
	start              time.Time

	mu     sync.Mutex
	errs   []string
	jitter *rand.Rand
}

// Load sends every file to cfg.Base and returns what happened. It returns
// an error only when it could not run (bad config, a file that vanished
// before the start, ctx cancelled). A file that cannot be read or decoded
// is counted in Summary.FailedFiles and the load goes on with the others;
// rejected Bundles and malformed NDJSON lines are counted in
// Summary.Failed.
func Load(ctx context.Context, cfg Config, files []string) (Summary, error) {
	if cfg.Base == "" {
		return Summary{}, errors.New("loader: no FHIR base URL")
	}
	cfg.Base = strings.TrimRight(cfg.Base, "/")
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2, IdleConnTimeout: 90 * time.Second,
		}}
	}
	l := &loader{cfg: cfg, start: cfg.Now(), jitter: cfg.Rand}
	if l.jitter == nil {
		l.jitter = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return Summary{}, fmt.Errorf("loader: %w", err)
		}
		l.totalBytes += st.Size()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopProgress := l.progress(ctx)
	var readErr error
	for _, tier := range Tiers(files) {
		// Each tier completes before the next starts, so conditional
		// references (Practitioner?identifier=…) find their targets.
		jobs := make(chan job, cfg.Concurrency)
		var wg sync.WaitGroup
		for w := 0; w < cfg.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					l.send(ctx, j)
				}
			}()
		}
		for _, f := range tier {
			if readErr = l.read(ctx, f, jobs); readErr != nil {
				break
			}
		}
		close(jobs)
		wg.Wait()
		if readErr != nil {
			break
		}
	}
	stopProgress()
	s := Summary{
		Files: len(files), FailedFiles: int(l.failedFiles.Load()), Bundles: int(l.bundles.Load()), Resources: int(l.doneRes.Load()),
		Failed: int(l.failed.Load()), Retries: int(l.retries.Load()), Elapsed: cfg.Now().Sub(l.start), Errors: l.errs,
	}
	if readErr == nil {
		readErr = ctx.Err()
	}
	return s, readErr
}

func (l *loader) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

// countingReader counts the bytes read from the file (compressed size).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// read turns one file into jobs. A file that cannot be read is counted as
// failed and reported; only a cancelled ctx stops the load.
func (l *loader) read(ctx context.Context, name string, jobs chan<- job) error {
	given, err := l.readFile(ctx, name, jobs)
	if err == nil || ctx.Err() != nil {
		return err
	}
	l.failedFiles.Add(1)
	l.fail("%v", err)
	// The rest of the file counts as done for the progress bar.
	if st, serr := os.Stat(name); serr == nil && st.Size() > given {
		l.doneBytes.Add(st.Size() - given)
	}
	return nil
}

// readFile is read without the failure accounting: it returns the input
// bytes it handed to jobs (their share of the progress bar) and what made
// the file unreadable. Jobs it emitted before an error are still sent.
func (l *loader) readFile(ctx context.Context, name string, jobs chan<- job) (given int64, err error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	var r io.Reader = bufio.NewReaderSize(cr, 1<<16)
	if strings.HasSuffix(strings.ToLower(name), ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return 0, fmt.Errorf("%s: not a gzip file: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	emit := func(j job) error {
		select {
		case jobs <- j:
			given += j.bytes
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if kindOf(name) == "bundle" {
		// Read into a buffer of the expected size at once, not by
		// repeated doubling.
		buf := bytes.NewBuffer(make([]byte, 0, sizeHint(f, name)+bytes.MinRead))
		if _, err := buf.ReadFrom(r); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		data := buf.Bytes()
		body, n, err := AsTransaction(data)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		err = emit(job{name: name, body: body, resources: n, bytes: cr.n})
		return given, err
	}
	// NDJSON: groups of BatchSize lines. A line that is not a JSON
	// resource fails alone (reported with its line number); the others of
	// its group are sent.
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var lines []entryLine
	line, first, last := 0, 0, int64(0) // line numbers: the last read, the group's first
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		body := entryBundle(lines, l.cfg.Batch)
		chunk := fmt.Sprintf("%s lines %d-%d", name, first, line)
		n := len(lines)
		lines = lines[:0]
		consumed := cr.n - last
		last = cr.n
		return emit(job{name: chunk, body: body, resources: n, bytes: consumed})
	}
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		typ, id, err := resourceHead(b)
		if err != nil {
			l.failed.Add(1)
			l.fail("%s line %d: %v", name, line, err)
			continue
		}
		if len(lines) == 0 {
			first = line
		}
		lines = append(lines, entryLine{json: append([]byte(nil), b...), typ: typ, id: id})
		if len(lines) >= l.cfg.BatchSize {
			if err := flush(); err != nil {
				return given, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if ferr := flush(); ferr != nil {
			return given, ferr
		}
		return given, fmt.Errorf("%s after line %d: %w", name, line, err)
	}
	err = flush()
	return given, err
}

// maxSizeHint caps the buffer sizeHint may ask for up front.
const maxSizeHint = 256 << 20

// sizeHint guesses the decoded size of a file: its size, or for gzip the
// size its trailer records (ISIZE, the last member's length mod 2^32).
// It is only a hint: a wrong guess costs a buffer growth, not correctness.
func sizeHint(f *os.File, name string) int {
	st, err := f.Stat()
	if err != nil || st.Size() <= 0 {
		return 0
	}
	if !strings.HasSuffix(strings.ToLower(name), ".gz") {
		return int(min(st.Size(), maxSizeHint))
	}
	var tail [4]byte
	if st.Size() < 18 {
		return 0
	}
	if _, err := f.ReadAt(tail[:], st.Size()-4); err != nil {
		return 0
	}
	n := int64(tail[0]) | int64(tail[1])<<8 | int64(tail[2])<<16 | int64(tail[3])<<24
	return int(min(n, maxSizeHint))
}

// AsTransaction returns a Bundle file's content ready to post, and its
// number of entries: a batch or transaction Bundle as it is; any other
// Bundle (collection, searchset, ...) as a transaction of PUTs (entries
// with an id) and POSTs; a single resource as a one-entry transaction.
func AsTransaction(data []byte) ([]byte, int, error) {
	// A batch or transaction Bundle, the common case, is checked and its
	// entries counted in one pass that builds nothing.
	if h, ok := scanHead(data); ok && h.resourceType == "Bundle" && (h.typ == "transaction" || h.typ == "batch") {
		return data, h.entries, nil
	}
	var head struct {
		ResourceType string            `json:"resourceType"`
		Type         string            `json:"type"`
		ID           string            `json:"id"`
		Entry        []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, 0, fmt.Errorf("not a JSON resource: %w", err)
	}
	if head.ResourceType == "" {
		return nil, 0, errors.New("no resourceType: not a FHIR resource")
	}
	if head.ResourceType == "Bundle" && (head.Type == "transaction" || head.Type == "batch") {
		return data, len(head.Entry), nil
	}
	if head.ResourceType != "Bundle" {
		b, err := NDJSONBundle([][]byte{data}, false)
		return b, 1, err
	}
	var res [][]byte
	for _, e := range head.Entry {
		var x struct {
			Resource json.RawMessage `json:"resource"`
		}
		if err := json.Unmarshal(e, &x); err == nil && len(x.Resource) > 0 {
			res = append(res, x.Resource)
		}
	}
	if len(res) == 0 {
		return nil, 0, fmt.Errorf("a %s Bundle without resources", head.Type)
	}
	b, err := NDJSONBundle(res, false)
	return b, len(res), err
}

// NDJSONBundle builds a transaction (or batch) Bundle from resources, one
// JSON object each: PUT Type/id for a resource with an id (so a reload
// replaces rather than duplicates, and references between files keep
// working), POST Type for one without.
func NDJSONBundle(lines [][]byte, batch bool) ([]byte, error) {
	entries := make([]entryLine, len(lines))
	for i, line := range lines {
		typ, id, err := resourceHead(line)
		if err != nil {
			return nil, fmt.Errorf("resource %d: %w", i+1, err)
		}
		entries[i] = entryLine{json: line, typ: typ, id: id}
	}
	return entryBundle(entries, batch), nil
}

// entryLine is one resource for a Bundle, its head already checked by
// resourceHead.
type entryLine struct {
	json    []byte
	typ, id string
}

// entryBundle renders the Bundle of NDJSONBundle from checked entries.
func entryBundle(entries []entryLine, batch bool) []byte {
	kind := "transaction"
	if batch {
		kind = "batch"
	}
	var buf bytes.Buffer
	buf.Grow(len(entries) * 1024)
	buf.WriteString(`{"resourceType":"Bundle","type":"` + kind + `","entry":[`)
	for i, e := range entries {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"resource":`)
		buf.Write(e.json)
		if e.id != "" {
			buf.WriteString(`,"request":{"method":"PUT","url":"` + e.typ + "/" + e.id + `"}}`)
		} else {
			buf.WriteString(`,"request":{"method":"POST","url":"` + e.typ + `"}}`)
		}
	}
	buf.WriteString("]}")
	return buf.Bytes()
}

// resourceHead returns the resourceType and id of one JSON resource, or
// why it is not one that can be sent as a Bundle entry.
func resourceHead(line []byte) (typ, id string, err error) {
	if h, ok := scanHead(line); ok {
		typ, id = h.resourceType, h.id
	} else {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return "", "", fmt.Errorf("not a JSON object: %w", err)
		}
		typ, id = head.ResourceType, head.ID
	}
	if typ == "" || strings.ContainsAny(typ, `"/\?`) || strings.ContainsAny(id, `"/\?`) {
		return "", "", errors.New("no valid resourceType or id")
	}
	return typ, id, nil
}

// send posts one job, retrying transient failures.
func (l *loader) send(ctx context.Context, j job) {
	defer l.doneBytes.Add(j.bytes)
	for attempt := 0; ; attempt++ {
		status, body, retryAfter, err := l.post(ctx, j.body)
		transient := err != nil || status == http.StatusTooManyRequests || status >= 500
		if transient && attempt < l.cfg.Retries && ctx.Err() == nil {
			l.retries.Add(1)
			d := l.cfg.Backoff << attempt
			if d > 30*time.Second || d <= 0 {
				d = 30 * time.Second
			}
			l.mu.Lock()
			d = d/2 + time.Duration(l.jitter.Int64N(int64(d/2)+1))
			l.mu.Unlock()
			if retryAfter > d {
				d = retryAfter
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		l.bundles.Add(1)
		if err != nil {
			l.failed.Add(int64(j.resources))
			l.fail("%s: %v", j.name, err)
			return
		}
		if status != http.StatusOK {
			l.failed.Add(int64(j.resources))
			l.fail("%s: HTTP %d: %s", j.name, status, diagnostics(body))
			return
		}
		ok, bad, msg := countEntries(body)
		if ok+bad == 0 && j.resources > 0 {
			ok = j.resources // a response without entries (not a response Bundle): trust the 200
		}
		l.doneRes.Add(int64(ok))
		l.failed.Add(int64(bad))
		if bad > 0 {
			l.fail("%s: %d entries failed, first: %s", j.name, bad, msg)
		}
		return
	}
}

func (l *loader) post(ctx context.Context, body []byte) (int, []byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.Base, bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	for k, vs := range l.cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := l.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, nil, 0, err
	}
	var ra time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = time.Duration(min(s, 300)) * time.Second
	}
	return resp.StatusCode, out, ra, nil
}

// countEntries counts 2xx and other entry statuses of a response Bundle.
func countEntries(body []byte) (ok, bad int, firstErr string) {
	// All entries succeeded, the common case: counted in one pass.
	if n, fast := scanStatuses(body); fast {
		return n, 0, ""
	}
	var b struct {
		Entry []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil {
		return 0, 0, ""
	}
	for _, e := range b.Entry {
		if strings.HasPrefix(e.Response.Status, "2") {
			ok++
			continue
		}
		bad++
		if firstErr == "" {
			firstErr = e.Response.Status + " " + diagnostics(e.Response.Outcome)
		}
	}
	return ok, bad, firstErr
}

// diagnostics extracts the first issue's diagnostics from an
// OperationOutcome, or a prefix of the body.
func diagnostics(body []byte) string {
	var oo struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) == nil && len(oo.Issue) > 0 && oo.Issue[0].Diagnostics != "" {
		return oo.Issue[0].Diagnostics
	}
	s := string(body)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// progress prints the progress line until stopped.
func (l *loader) progress(ctx context.Context) (stop func()) {
	if l.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(l.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Fprint(l.cfg.Progress, "\r"+l.line())
			case <-done:
				fmt.Fprint(l.cfg.Progress, "\r"+l.line()+"\n")
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// line renders the progress bar: share of input bytes done, resources,
// rate and ETA.
func (l *loader) line() string {
	el := l.cfg.Now().Sub(l.start)
	done, total := l.doneBytes.Load(), l.totalBytes
	frac := 1.0
	if total > 0 {
		frac = min(1, float64(done)/float64(total))
	}
	const width = 24
	n := int(frac * width)
	bar := strings.Repeat("#", n) + strings.Repeat("-", width-n)
	res := l.doneRes.Load()
	rate := 0.0
	if el > 0 {
		rate = float64(res) / el.Seconds()
	}
	eta := "--:--"
	if frac > 0 && frac < 1 {
		rem := time.Duration(float64(el) * (1 - frac) / frac)
		eta = fmtDuration(rem)
	} else if frac >= 1 {
		eta = "0:00"
	}
	return fmt.Sprintf("[%s] %3.0f%% %d resources %.0f/s ETA %s (%d failed, %d retries)  ",
		bar, frac*100, res, rate, eta, l.failed.Load(), l.retries.Load())
}

func fmtDuration(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
