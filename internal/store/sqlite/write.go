package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

// request is one caller's unit of work for the writer. fn runs inside the
// group's transaction (inside a SAVEPOINT when the group has several
// requests); its error is returned to the caller and rolls back only its
// own changes.
type request struct {
	ctx        context.Context
	fn         func(tx *wtx) error
	checkpoint bool // truncate the WAL after the group commits (crypto-erase)
	resources  int  // resource versions it writes (drives token merges)
	done       chan error
	// cacheKeys are the current versions it changes (versionCache keys);
	// cacheAll drops the whole version cache (account deletion).
	cacheKeys []string
	cacheAll  bool
}

// writer owns the one write connection and applies queued requests in
// groups.
type writer struct {
	cache  *versionCache // may be nil (disabled)
	conn   *sql.Conn
	tx     wtx
	reqs   chan *request
	quit   chan struct{}
	exited chan struct{}
	max    int
	log    *slog.Logger

	groups, requests atomic.Int64 // statistics: transactions and requests committed

	kick       chan struct{} // to the indexer
	pending    int           // resource versions committed since the last flush (approximate)
	mergeEvery int
	mergeIdle  time.Duration // < 0: no idle merges
}

// wtx holds the writer's prepared statements; only the writer goroutine uses
// it.
type wtx struct {
	conn                                                                 *sql.Conn
	acct, getCurrent, insVersion, insCurrent, updCurrent, setIx          *sql.Stmt
	insPending, pendingRows, delPending, getIndexed, setIndexed, nextSeq *sql.Stmt
	insSegment, insSorts, setSorts, delSorts                             *sql.Stmt
	insAccount, updAccount, getAccount                                   *sql.Stmt
	bulkPostings                                                         *sql.Stmt // prepared on first use
	all                                                                  []*sql.Stmt
}

// bg is the context of every statement the writer runs: a caller's context
// must never interrupt a group transaction that carries other callers'
// writes. Callers' contexts are checked before their request is applied.
var bg = context.Background()

func newWriter(ctx context.Context, conn *sql.Conn, o Options, log *slog.Logger, cache *versionCache) (*writer, error) {
	w := &writer{
		cache:      cache,
		conn:       conn,
		reqs:       make(chan *request, o.MaxBatch),
		quit:       make(chan struct{}),
		exited:     make(chan struct{}),
		max:        o.MaxBatch,
		log:        log,
		mergeEvery: o.MergeEvery,
		kick:       make(chan struct{}, 1),
		mergeIdle:  o.MergeIdle,
	}
	t := &w.tx
	t.conn = conn
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&t.acct, "SELECT id FROM accounts WHERE name = ?"},
		{&t.getCurrent, "SELECT version_id, seq, deleted FROM current WHERE acct = ? AND type = ? AND id = ?"},
		{&t.insVersion, "INSERT INTO versions (acct, type, id, version_id, last_updated, deleted, body) VALUES (?, ?, ?, ?, ?, ?, ?)"},
		{&t.insCurrent, "INSERT INTO current (acct, type, id, version_id, seq, deleted, ix) VALUES (?, ?, ?, ?, ?, ?, ?)"},
		{&t.updCurrent, "UPDATE current SET version_id = ?, seq = ?, deleted = ?, ix = ? WHERE acct = ? AND type = ? AND id = ?"},
		{&t.setIx, "UPDATE current SET ix = ? WHERE acct = ? AND type = ? AND id = ?"},
		{&t.insPending, "INSERT INTO pending (ix, acct, type, id, seq, deleted, tokens) VALUES (?, ?, ?, ?, ?, ?, ?)"},
		{&t.nextSeq, "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'versions' RETURNING seq"},
		{&t.pendingRows, "SELECT ix, acct, type, id, tokens FROM pending WHERE ix > ? ORDER BY ix"},
		{&t.delPending, "DELETE FROM pending WHERE ix <= ?"},
		{&t.getIndexed, "SELECT indexed_ix FROM index_state WHERE id = 1"},
		{&t.setIndexed, "UPDATE index_state SET indexed_ix = ? WHERE id = 1"},
		{&t.insSegment, "INSERT INTO segments (resources, min_ix, max_ix) VALUES (?, ?, ?)"},
		{&t.insSorts, "INSERT INTO version_sorts (seq, sorts) VALUES (?, ?)"},
		{&t.setSorts, "INSERT OR REPLACE INTO version_sorts (seq, sorts) VALUES (?, ?)"},
		{&t.delSorts, "DELETE FROM version_sorts WHERE seq = ?"},
		{&t.insAccount, "INSERT INTO accounts (name, created_at, data, rev) VALUES (?, ?, ?, 1)"},
		{&t.updAccount, "UPDATE accounts SET data = ?, rev = rev + 1 WHERE name = ? AND rev = ?"},
		{&t.getAccount, "SELECT name, created_at, data, rev FROM accounts WHERE name = ?"},
	} {
		st, err := conn.PrepareContext(ctx, p.sql)
		if err != nil {
			w.closeStmts()
			return nil, fmt.Errorf("sqlite: prepare %q: %w", p.sql, err)
		}
		*p.dst = st
		t.all = append(t.all, st)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM pending").Scan(&w.pending); err != nil {
		w.closeStmts()
		return nil, fmt.Errorf("sqlite: read index state: %w", err)
	}
	go w.loop()
	return w, nil
}

func (w *writer) closeStmts() error {
	var errs []error
	for _, st := range w.tx.all {
		errs = append(errs, st.Close())
	}
	w.tx.all = nil
	return errors.Join(errs...)
}

// do queues fn and waits for the group that carries it to commit. Once
// queued, a request is either applied and committed, or skipped because
// its context ended before the writer reached it: the caller always learns
// which, so a Commit's outcome is never ambiguous.
func (s *Store) do(ctx context.Context, checkpoint bool, fn func(tx *wtx) error) error {
	return s.doN(ctx, checkpoint, 0, fn)
}

// doN is do for a request that writes n resource versions.
func (s *Store) doN(ctx context.Context, checkpoint bool, n int, fn func(tx *wtx) error) error {
	return s.submit(ctx, &request{fn: fn, checkpoint: checkpoint, resources: n, cacheAll: checkpoint})
}

// submit queues r for the writer and waits for its outcome.
func (s *Store) submit(ctx context.Context, r *request) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.ctx, r.done = ctx, make(chan error, 1)
	select {
	case s.w.reqs <- r:
	case <-s.w.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-s.w.exited:
		select {
		case err := <-r.done:
			return err
		default:
			return store.ErrClosed
		}
	}
}

func (w *writer) stop() {
	close(w.quit)
	<-w.exited
}

func (w *writer) loop() {
	defer close(w.exited)
	batch := make([]*request, 0, w.max)
	last := 0 // size of the previous group
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		if w.pending > 0 && w.mergeIdle > 0 {
			idle.Reset(w.mergeIdle)
		} else {
			idle.Stop()
		}
		select {
		case r := <-w.reqs:
			batch = append(batch[:0], r)
		case <-idle.C:
			w.signal() // quiet: catch the token index up
			continue
		case <-w.quit:
			w.drain()
			return
		}
		batch = w.gather(batch, last)
		last = len(batch)
		w.groups.Add(1) // counted before the callers are answered
		w.requests.Add(int64(len(batch)))
		w.group(batch)
		clear(batch)
		if w.pending >= w.mergeEvery {
			w.signal()
		}
	}
}

// signal asks the indexer to flush pending tokens (and compact); repeated
// signals while it works coalesce.
func (w *writer) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// gatherWait bounds how long a group waits for its followers; it is below
// the cost of the fsync that waiting saves.
const gatherWait = time.Millisecond

// gather adds queued requests to batch. When the previous group had several
// requests, callers are committing concurrently: most of them are about to
// resubmit, so the group waits (at most gatherWait) until as many have
// arrived, rather than paying a whole fsync for the first one alone. A lone
// caller never waits.
func (w *writer) gather(batch []*request, last int) []*request {
	want := min(last, w.max)
	var timer *time.Timer
	for len(batch) < w.max {
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
			continue
		default:
		}
		if len(batch) >= want {
			break
		}
		if timer == nil {
			timer = time.NewTimer(gatherWait)
			defer timer.Stop()
		}
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
			continue
		case <-timer.C:
		case <-w.quit:
		}
		break
	}
	return batch
}

// drain fails every request still queued at Close.
func (w *writer) drain() {
	for {
		select {
		case r := <-w.reqs:
			r.done <- store.ErrClosed
		default:
			return
		}
	}
}

// group applies batch in one transaction and answers every request.
func (w *writer) group(batch []*request) {
	errs := make([]error, len(batch))
	live := make([]int, 0, len(batch))
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err // skipped: its caller gave up before it ran
		} else {
			live = append(live, i)
		}
	}
	defer func() {
		for i, r := range batch {
			r.done <- errs[i]
		}
	}()
	if len(live) == 0 {
		return
	}
	failLive := func(err error) {
		for _, i := range live {
			if errs[i] == nil || errors.Is(errs[i], errAborted) {
				errs[i] = err
			}
		}
	}
	if _, err := w.conn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		failLive(fmt.Errorf("begin: %w", err))
		return
	}
	applied, checkpoint := 0, false
	for _, i := range live {
		r := batch[i]
		if len(live) == 1 {
			errs[i] = r.fn(&w.tx) // no savepoint needed: a failure rolls back the whole transaction
		} else {
			errs[i] = w.savepoint(r)
		}
		switch {
		case errs[i] == nil:
			applied++
			checkpoint = checkpoint || r.checkpoint
		case errors.Is(errs[i], errAborted):
			// The transaction is no longer usable: nothing of the group stays.
			w.rollback()
			failLive(errs[i])
			return
		}
	}
	if applied == 0 {
		w.rollback()
		return
	}
	if _, err := w.conn.ExecContext(bg, "COMMIT"); err != nil {
		w.rollback()
		failLive(fmt.Errorf("commit: %w", err))
		return
	}
	var changed []string
	all := false
	for _, i := range live {
		if errs[i] == nil {
			w.pending = max(0, w.pending+batch[i].resources)
			changed = append(changed, batch[i].cacheKeys...)
			all = all || batch[i].cacheAll
		}
	}
	w.cache.invalidate(changed, all)
	if checkpoint {
		w.checkpoint()
	}
}

// errAborted marks a failure that left the group transaction unusable.
var errAborted = errors.New("transaction aborted")

func (w *writer) savepoint(r *request) error {
	if _, err := w.conn.ExecContext(bg, "SAVEPOINT g"); err != nil {
		return fmt.Errorf("%w: savepoint: %v", errAborted, err)
	}
	err := r.fn(&w.tx)
	if err != nil {
		if _, rerr := w.conn.ExecContext(bg, "ROLLBACK TO g"); rerr != nil {
			return fmt.Errorf("%w: rollback to savepoint: %v (after %v)", errAborted, rerr, err)
		}
	}
	if _, rerr := w.conn.ExecContext(bg, "RELEASE g"); rerr != nil {
		return fmt.Errorf("%w: release savepoint: %v", errAborted, rerr)
	}
	return err
}

func (w *writer) rollback() {
	if _, err := w.conn.ExecContext(bg, "ROLLBACK"); err != nil {
		w.log.Error("sqlite: rollback failed", "err", err)
	}
}

// checkpoint truncates the WAL so that pages of deleted rows (a deleted
// account's key ring) do not linger in it. Best effort: readers may hold it
// back, and the next checkpoint catches up.
func (w *writer) checkpoint() {
	var busy, logFrames, done int
	err := w.conn.QueryRowContext(bg, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
	if err != nil || busy != 0 {
		w.log.Warn("sqlite: WAL truncation after account delete incomplete", "busy", busy, "err", err)
	}
}

// Commit applies writes atomically; see store.Store.
func (s *Store) Commit(ctx context.Context, account string, writes []store.Write) ([]int64, error) {
	for i := range writes {
		if err := checkWrite(&writes[i]); err != nil {
			return nil, err
		}
	}
	seqs := make([]int64, len(writes))
	keys := make([]string, len(writes))
	for i := range writes {
		keys[i] = cacheKey(account, store.Ref{Type: writes[i].Version.Type, ID: writes[i].Version.ID})
	}
	err := s.submit(ctx, &request{resources: len(writes), cacheKeys: keys, fn: func(tx *wtx) error {
		acct, err := tx.accountID(account)
		if err != nil {
			return err
		}
		for i := range writes {
			if seqs[i], err = tx.apply(acct, account, &writes[i]); err != nil {
				return err
			}
		}
		return nil
	}})
	if err != nil {
		return nil, wrapErr(err, "commit %s", account)
	}
	return seqs, nil
}

func checkWrite(w *store.Write) error {
	v := &w.Version
	switch {
	case v.Type == "" || v.ID == "":
		return fmt.Errorf("sqlite: commit: write without type or id (%q/%q)", v.Type, v.ID)
	case v.VersionID < 1:
		return fmt.Errorf("sqlite: commit %s/%s: versionId %d < 1", v.Type, v.ID, v.VersionID)
	case w.IfVersion < store.NoCheck:
		return fmt.Errorf("sqlite: commit %s/%s: invalid IfVersion %d", v.Type, v.ID, w.IfVersion)
	}
	for _, t := range w.Tokens {
		if len(t) == 0 || len(t) > 255 {
			return fmt.Errorf("sqlite: commit %s/%s: token of %d bytes (want 1..255)", v.Type, v.ID, len(t))
		}
	}
	for _, sv := range w.Sorts {
		if len(sv.Slot) == 0 || len(sv.Slot) > 255 {
			return fmt.Errorf("sqlite: commit %s/%s: sort slot of %d bytes (want 1..255)", v.Type, v.ID, len(sv.Slot))
		}
	}
	return nil
}

// wrapErr adds context to an error returned through the writer.
func wrapErr(err error, format string, args ...any) error {
	return fmt.Errorf("sqlite: "+format+": %w", append(args, err)...)
}

func (tx *wtx) accountID(account string) (int64, error) {
	var id int64
	err := tx.acct.QueryRowContext(bg, account).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("account %q: %w", account, store.ErrNotFound)
	}
	return id, err
}

type currentRow struct {
	exists    bool
	versionID int64
	seq       int64
	deleted   bool
}

func (tx *wtx) current(acct int64, typ, id string) (currentRow, error) {
	var c currentRow
	err := tx.getCurrent.QueryRowContext(bg, acct, typ, id).Scan(&c.versionID, &c.seq, &c.deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	c.exists = true
	return c, nil
}

// addPending records the tokens of one resource's new index state under
// stamp ix. A delete marker has none: it never matches.
func (tx *wtx) addPending(ix, acct int64, typ, id string, seq int64, deleted bool, tokens [][]byte) error {
	var list []byte
	if !deleted {
		list = encodeList(dedupe(tokens))
	}
	if _, err := tx.insPending.ExecContext(bg, ix, acct, typ, id, seq, deleted, nonNil(list)); err != nil {
		return fmt.Errorf("queue tokens of %s/%s: %w", typ, id, err)
	}
	return nil
}

// apply stores one write and returns its seq.
func (tx *wtx) apply(acct int64, account string, w *store.Write) (int64, error) {
	v := &w.Version
	cur, err := tx.current(acct, v.Type, v.ID)
	if err != nil {
		return 0, fmt.Errorf("read current %s/%s: %w", v.Type, v.ID, err)
	}
	switch {
	case w.IfVersion == store.NoCheck:
	case w.IfVersion == 0 && cur.exists:
		return 0, fmt.Errorf("%s/%s exists (v%d): %w", v.Type, v.ID, cur.versionID, store.ErrConflict)
	case w.IfVersion > 0 && !cur.exists:
		return 0, fmt.Errorf("%s/%s does not exist, expected v%d: %w", v.Type, v.ID, w.IfVersion, store.ErrConflict)
	case w.IfVersion > 0 && cur.versionID != w.IfVersion:
		return 0, fmt.Errorf("%s/%s is v%d, expected v%d: %w", v.Type, v.ID, cur.versionID, w.IfVersion, store.ErrConflict)
	}
	res, err := tx.insVersion.ExecContext(bg, acct, v.Type, v.ID, v.VersionID, micros(v.LastUpdated), v.Deleted, nonNil(v.Body))
	if isConstraint(err) {
		return 0, fmt.Errorf("%s/%s v%d already stored: %w", v.Type, v.ID, v.VersionID, store.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("insert version %s/%s: %w", v.Type, v.ID, err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert version %s/%s: %w", v.Type, v.ID, err)
	}
	// Tokens wait in a pending row until the writer flushes them into a
	// posting segment (segments.go); Lookup reads pending ones meanwhile.
	// The version's seq is the stamp of its index state.
	ix := seq
	if err := tx.addPending(ix, acct, v.Type, v.ID, seq, v.Deleted, w.Tokens); err != nil {
		return 0, err
	}
	// Sort values belong to the version: one row appended beside it.
	if len(w.Sorts) > 0 {
		if _, err := tx.insSorts.ExecContext(bg, seq, encodeSorts(w.Sorts)); err != nil {
			return 0, fmt.Errorf("store sorts of %s/%s: %w", v.Type, v.ID, err)
		}
	}
	if cur.exists {
		_, err = tx.updCurrent.ExecContext(bg, v.VersionID, seq, v.Deleted, ix, acct, v.Type, v.ID)
	} else {
		_, err = tx.insCurrent.ExecContext(bg, acct, v.Type, v.ID, v.VersionID, seq, v.Deleted, ix)
	}
	if err != nil {
		return 0, fmt.Errorf("set current %s/%s: %w", v.Type, v.ID, err)
	}
	return seq, nil
}

// ReplaceIndex swaps the tokens and sorts of ref's current version.
func (s *Store) ReplaceIndex(ctx context.Context, account string, ref store.Ref, versionID int64, tokens [][]byte, sorts []store.SortValue) error {
	if err := checkWrite(&store.Write{Version: store.Version{Type: ref.Type, ID: ref.ID, VersionID: max(versionID, 1)}, Tokens: tokens, Sorts: sorts}); err != nil {
		return err
	}
	err := s.doN(ctx, false, 1, func(tx *wtx) error {
		acct, err := tx.accountID(account)
		if err != nil {
			return err
		}
		cur, err := tx.current(acct, ref.Type, ref.ID)
		if err != nil {
			return err
		}
		if !cur.exists {
			return store.ErrNotFound
		}
		if cur.versionID != versionID {
			return fmt.Errorf("current is v%d, not v%d: %w", cur.versionID, versionID, store.ErrConflict)
		}
		// A new index state: its stamp, drawn from the versions sequence
		// (so it is above every stamp so far and never reused), supersedes
		// the postings of the old one; its tokens wait in pending like a
		// commit's.
		var ix int64
		if err := tx.nextSeq.QueryRowContext(bg).Scan(&ix); err != nil {
			return fmt.Errorf("draw index stamp: %w", err)
		}
		if err := tx.addPending(ix, acct, ref.Type, ref.ID, cur.seq, cur.deleted, tokens); err != nil {
			return err
		}
		if _, err := tx.setIx.ExecContext(bg, ix, acct, ref.Type, ref.ID); err != nil {
			return fmt.Errorf("set index stamp: %w", err)
		}
		if len(sorts) > 0 {
			_, err = tx.setSorts.ExecContext(bg, cur.seq, encodeSorts(sorts))
		} else {
			_, err = tx.delSorts.ExecContext(bg, cur.seq)
		}
		if err != nil {
			return fmt.Errorf("replace sorts: %w", err)
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "replace index %s/%s/%s", account, ref.Type, ref.ID)
	}
	return nil
}

// CreateAccount stores a new account with Rev 1.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) (store.Account, error) {
	if a.Name == "" {
		return store.Account{}, fmt.Errorf("sqlite: create account: empty name")
	}
	var out store.Account
	err := s.do(ctx, false, func(tx *wtx) error {
		_, err := tx.insAccount.ExecContext(bg, a.Name, micros(a.CreatedAt), nonNil(a.Data))
		if isConstraint(err) {
			return store.ErrExists
		}
		if err != nil {
			return err
		}
		out, err = scanAccount(tx.getAccount.QueryRowContext(bg, a.Name))
		return err
	})
	if err != nil {
		return store.Account{}, wrapErr(err, "create account %q", a.Name)
	}
	return out, nil
}

// UpdateAccount replaces Data when the stored Rev is expectRev.
func (s *Store) UpdateAccount(ctx context.Context, name string, data []byte, expectRev int64) (store.Account, error) {
	var out store.Account
	err := s.do(ctx, false, func(tx *wtx) error {
		res, err := tx.updAccount.ExecContext(bg, nonNil(data), name, expectRev)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		out, err = scanAccount(tx.getAccount.QueryRowContext(bg, name))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err == nil && n == 0 {
			return fmt.Errorf("rev is %d, not %d: %w", out.Rev, expectRev, store.ErrConflict)
		}
		return err
	})
	if err != nil {
		return store.Account{}, wrapErr(err, "update account %q", name)
	}
	return out, nil
}

// DeleteAccount removes the account record and everything stored under it,
// then truncates the WAL so the deleted key ring does not linger there.
func (s *Store) DeleteAccount(ctx context.Context, name string) error {
	err := s.do(ctx, true, func(tx *wtx) error {
		acct, err := tx.accountID(name)
		if err != nil {
			return err
		}
		for _, q := range []string{
			"DELETE FROM postings WHERE acct = ?",
			"DELETE FROM pending WHERE acct = ?",
			"DELETE FROM version_sorts WHERE seq IN (SELECT seq FROM versions WHERE acct = ?)",
			"DELETE FROM current WHERE acct = ?",
			"DELETE FROM versions WHERE acct = ?",
			"DELETE FROM accounts WHERE id = ?",
		} {
			if _, err := tx.conn.ExecContext(bg, q, acct); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapErr(err, "delete account %q", name)
	}
	return nil
}

// encodeList packs byte strings of 1..255 bytes as length-prefixed items.
func encodeList(items [][]byte) []byte {
	n := 0
	for _, it := range items {
		n += 1 + len(it)
	}
	out := make([]byte, 0, n)
	for _, it := range items {
		out = append(out, byte(len(it)))
		out = append(out, it...)
	}
	return out
}

func decodeList(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || 1+n > len(b) {
			return nil, fmt.Errorf("corrupt index list")
		}
		out = append(out, b[1:1+n])
		b = b[1+n:]
	}
	return out, nil
}

// dedupe returns the distinct items of list (in byte order), leaving list
// as it was.
func dedupe(list [][]byte) [][]byte {
	out := slices.Clone(list)
	slices.SortFunc(out, bytes.Compare)
	return slices.CompactFunc(out, bytes.Equal)
}

// Stats are counters of the writer since Open.
type Stats struct {
	Groups      int64         // write transactions (one fsync each under FULL)
	Requests    int64         // requests (Commit, account changes, ReplaceIndex) they carried
	TokenMerges int64         // flushes of pending tokens into a new posting segment
	Compactions int64         // merges of posting segments
	MergeTime   time.Duration // total time the indexer spent flushing and compacting (beside the writer)
}

// Stats reports how well group commit is grouping.
func (s *Store) Stats() Stats {
	return Stats{Groups: s.w.groups.Load(), Requests: s.w.requests.Load(),
		TokenMerges: s.ix.flushes.Load(), Compactions: s.ix.compactions.Load(), MergeTime: time.Duration(s.ix.nanos.Load())}
}

// encodeSorts packs sort values as (uvarint length, slot, uvarint length,
// value) pairs; of a repeated slot only the last value is kept.
func encodeSorts(sorts []store.SortValue) []byte {
	var out []byte
	for i, sv := range sorts {
		if slices.ContainsFunc(sorts[i+1:], func(x store.SortValue) bool { return bytes.Equal(x.Slot, sv.Slot) }) {
			continue
		}
		out = binary.AppendUvarint(out, uint64(len(sv.Slot)))
		out = append(out, sv.Slot...)
		out = binary.AppendUvarint(out, uint64(len(sv.Value)))
		out = append(out, sv.Value...)
	}
	return out
}

// sortValue finds slot's value in an encodeSorts blob.
func sortValue(b, slot []byte) ([]byte, bool, error) {
	for len(b) > 0 {
		var item [2][]byte
		for k := range item {
			n, w := binary.Uvarint(b)
			if w <= 0 || uint64(len(b)-w) < n {
				return nil, false, fmt.Errorf("corrupt sort values")
			}
			item[k] = b[w : w+int(n)]
			b = b[w+int(n):]
		}
		if bytes.Equal(item[0], slot) {
			return item[1], true, nil
		}
	}
	return nil, false, nil
}
