package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

// ReindexBatch rebuilds the blind tokens and sort values of up to limit
// current resources of account after the cursor (in (Type, ID) order),
// without writing new versions. It returns the new cursor, the number of
// resources reindexed and skipped (changed meanwhile: their new version was
// indexed by its own write), and done when the scan reached the end.
func (s *Searcher) ReindexBatch(ctx context.Context, account string, after store.Ref, limit int) (next store.Ref, n, skipped int, done bool, err error) {
	keys, err := s.cfg.Resources.Keys(ctx, account)
	if err != nil {
		return after, 0, 0, false, err
	}
	vs, err := s.cfg.Store.Scan(ctx, account, "", after, limit)
	if err != nil {
		return after, 0, 0, false, fmt.Errorf("search: reindex scan: %w", err)
	}
	next = after
	for _, v := range vs {
		res, err := s.cfg.Resources.Open(keys, account, v)
		if err != nil {
			return next, n, skipped, false, err
		}
		m, err := decode(res.Body)
		if err != nil {
			return next, n, skipped, false, fmt.Errorf("search: reindex decode %s/%s: %w", v.Type, v.ID, err)
		}
		tokens, sorts, err := s.cfg.Indexer.Index(keys, v.Type, v.ID, m)
		if err != nil {
			return next, n, skipped, false, err
		}
		ref := store.Ref{Type: v.Type, ID: v.ID}
		switch err := s.cfg.Store.ReplaceIndex(ctx, account, ref, v.VersionID, tokens, sorts); {
		case err == nil:
			n++
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			skipped++
		default:
			return next, n, skipped, false, fmt.Errorf("search: reindex %s/%s: %w", v.Type, v.ID, err)
		}
		next = ref
	}
	return next, n, skipped, len(vs) < limit, nil
}

// ReindexJob is the state of an account-wide $reindex.
type ReindexJob struct {
	Account string    `json:"account"`
	State   string    `json:"state"`   // running, done, failed, stopped
	Done    int       `json:"done"`    // resources reindexed so far
	Skipped int       `json:"skipped"` // changed while the job ran
	Cursor  store.Ref `json:"cursor"`  // the last resource processed
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	Error   string    `json:"error,omitempty"`
}

// Reindexer runs one $reindex job per account in the background. Jobs and
// their cursors live in memory: a job that failed or was stopped resumes
// from its cursor when started again, but a process restart forgets it
// (starting again then rescans from the beginning, which is safe: reindexing
// is idempotent). Safe for concurrent use.
type Reindexer struct {
	s     *Searcher
	batch int
	mu    sync.Mutex
	jobs  map[string]*ReindexJob
	stop  map[string]context.CancelFunc
}

// NewReindexer builds a Reindexer that processes batch resources per store
// round trip (0: 200).
func NewReindexer(s *Searcher, batch int) *Reindexer {
	if batch <= 0 {
		batch = 200
	}
	return &Reindexer{s: s, batch: batch, jobs: map[string]*ReindexJob{}, stop: map[string]context.CancelFunc{}}
}

// Start starts (or resumes) the account's job and returns its state. A
// running job is left alone; a finished one starts over.
func (x *Reindexer) Start(account string) ReindexJob {
	x.mu.Lock()
	defer x.mu.Unlock()
	j := x.jobs[account]
	if j != nil && j.State == "running" {
		return *j
	}
	now := x.s.cfg.Now().UTC()
	if j == nil || j.State == "done" {
		j = &ReindexJob{Account: account, Started: now}
		x.jobs[account] = j
	}
	j.State, j.Error, j.Updated = "running", "", now
	ctx, cancel := context.WithCancel(context.Background())
	x.stop[account] = cancel
	go x.run(ctx, j)
	return *j
}

// Stop interrupts the account's running job; Start resumes it.
func (x *Reindexer) Stop(account string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c := x.stop[account]; c != nil {
		c()
	}
}

// Status returns the account's job, if any.
func (x *Reindexer) Status(account string) (ReindexJob, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	j := x.jobs[account]
	if j == nil {
		return ReindexJob{}, false
	}
	return *j, true
}

func (x *Reindexer) run(ctx context.Context, j *ReindexJob) {
	x.mu.Lock()
	cursor := j.Cursor
	x.mu.Unlock()
	for {
		next, n, skipped, done, err := x.s.ReindexBatch(ctx, j.Account, cursor, x.batch)
		x.mu.Lock()
		j.Done += n
		j.Skipped += skipped
		j.Cursor, cursor = next, next
		j.Updated = x.s.cfg.Now().UTC()
		switch {
		case ctx.Err() != nil:
			j.State = "stopped"
		case err != nil:
			j.State, j.Error = "failed", err.Error()
			x.s.log.Error("search: reindex failed", "account", j.Account, "err", err)
		case done:
			j.State = "done"
			x.s.log.Info("search: reindex done", "account", j.Account, "resources", j.Done, "skipped", j.Skipped)
		}
		state := j.State
		x.mu.Unlock()
		if state != "running" {
			return
		}
	}
}

// StartReindex starts or resumes the account's $reindex job and returns its
// state as a FHIR Parameters resource. It implements rest.ReindexRunner.
func (s *Searcher) StartReindex(ctx context.Context, account string) ([]byte, error) {
	if _, err := s.cfg.Resources.Keys(ctx, account); err != nil {
		return nil, err
	}
	return jobParameters(s.reindex.Start(account))
}

// ReindexStatus returns the account's $reindex job state as a FHIR
// Parameters resource (state "none" when no job ran in this process).
func (s *Searcher) ReindexStatus(ctx context.Context, account string) ([]byte, error) {
	if _, err := s.cfg.Resources.Keys(ctx, account); err != nil {
		return nil, err
	}
	j, ok := s.reindex.Status(account)
	if !ok {
		j = ReindexJob{Account: account, State: "none"}
	}
	return jobParameters(j)
}

func jobParameters(j ReindexJob) ([]byte, error) {
	p := []any{
		map[string]any{"name": "state", "valueCode": j.State},
		map[string]any{"name": "done", "valueInteger": j.Done},
		map[string]any{"name": "skipped", "valueInteger": j.Skipped},
	}
	if j.Cursor.Type != "" {
		p = append(p, map[string]any{"name": "cursor", "valueString": j.Cursor.Type + "/" + j.Cursor.ID})
	}
	if !j.Started.IsZero() {
		p = append(p, map[string]any{"name": "started", "valueInstant": j.Started.Format(time.RFC3339Nano)},
			map[string]any{"name": "updated", "valueInstant": j.Updated.Format(time.RFC3339Nano)})
	}
	if j.Error != "" {
		p = append(p, map[string]any{"name": "error", "valueString": j.Error})
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": p})
	if err != nil {
		return nil, fmt.Errorf("search: render reindex state: %w", err)
	}
	return b, nil
}
