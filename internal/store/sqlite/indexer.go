package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

// indexer flushes pending tokens into posting segments and compacts
// segments beside the writer. It builds each new segment from a read
// snapshot on its own goroutine — the CPU-heavy part: decoding token
// lists, grouping them by token, merging posting lists — and hands the
// finished rows to the writer as ordinary requests, so commits keep
// flowing while it works. Every step it hands over re-checks what it read
// (the indexed stamp, the source segments), so several handles on one
// file, each with its own indexer, never apply a stale plan.
type indexer struct {
	s      *Store
	log    *slog.Logger
	kick   <-chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	flushes, compactions, nanos atomic.Int64
}

// mergeChunk is the most postings rows one writer request of a
// compaction inserts, so a large compaction holds the writer in short
// turns.
const mergeChunk = 16384

func newIndexer(s *Store, kick <-chan struct{}, log *slog.Logger) *indexer {
	ctx, cancel := context.WithCancel(context.Background())
	ix := &indexer{s: s, log: log, kick: kick, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go ix.loop()
	return ix
}

// stop ends the indexer and waits for it. A step cut short leaves nothing
// visible: pending rows stay pending, and a half-written compaction
// segment is removed at the next Open.
func (ix *indexer) stop() {
	ix.cancel()
	<-ix.done
}

func (ix *indexer) loop() {
	defer close(ix.done)
	for {
		select {
		case <-ix.kick:
		case <-ix.ctx.Done():
			return
		}
		start := time.Now()
		ix.run()
		ix.nanos.Add(int64(time.Since(start)))
	}
}

// run flushes everything pending, then compacts while a size class is
// full.
func (ix *indexer) run() {
	for {
		n, err := ix.flushOnce()
		if err != nil {
			ix.fail("flush", err)
			return
		}
		if n < maxFlushRows {
			break
		}
	}
	for {
		merged, err := ix.compactOnce()
		if err != nil {
			ix.fail("compaction", err)
			return
		}
		if !merged {
			return
		}
	}
}

func (ix *indexer) fail(what string, err error) {
	if ix.ctx.Err() == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, store.ErrClosed) {
		ix.log.Error("sqlite: token index "+what+" failed; it is retried on the next trigger", "err", err)
	}
}

// snapshot runs fn in a read transaction.
func (ix *indexer) snapshot(fn func(tx *sql.Tx) error) error {
	tx, err := ix.s.rdb.BeginTx(ix.ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// flushOnce moves up to maxFlushRows pending rows into a new segment and
// returns how many it read.
func (ix *indexer) flushOnce() (int, error) {
	var p flushPlan
	err := ix.snapshot(func(tx *sql.Tx) error {
		var err error
		p, err = buildFlush(ix.ctx, tx)
		return err
	})
	if err != nil || p.consumed == 0 {
		return 0, err
	}
	r := &request{}
	r.fn = func(tx *wtx) error {
		applied, err := tx.applyFlush(p)
		if applied {
			r.resources = -p.consumed // no longer pending
		}
		return err
	}
	if err := ix.s.submit(ix.ctx, r); err != nil {
		return 0, err
	}
	if r.resources < 0 {
		ix.flushes.Add(1)
	}
	return p.consumed, nil
}

// compactOnce merges one full size class, if there is one, and reports
// whether it did.
func (ix *indexer) compactOnce() (bool, error) {
	var p mergePlan
	err := ix.snapshot(func(tx *sql.Tx) error {
		segs, err := listSegments(ix.ctx, tx)
		if err != nil {
			return err
		}
		pick := pickCompaction(segs)
		if pick == nil {
			return nil
		}
		p, err = buildMerge(ix.ctx, tx, pick)
		return err
	})
	if err != nil || p.src == nil {
		return false, err
	}
	var seg int64
	if err := ix.s.do(ix.ctx, false, func(tx *wtx) error {
		var err error
		seg, err = tx.startMerge(p)
		return err
	}); err != nil || seg == 0 {
		return false, err // seg 0: another handle merged these segments
	}
	for rows := p.rows; len(rows) > 0; {
		chunk := rows[:min(len(rows), mergeChunk)]
		rows = rows[len(chunk):]
		if err := ix.s.do(ix.ctx, false, func(tx *wtx) error { return tx.insertAll(seg, chunk) }); err != nil {
			return false, err
		}
	}
	if err := ix.s.do(ix.ctx, false, func(tx *wtx) error { return tx.finishMerge(p, seg) }); err != nil {
		return false, err
	}
	ix.compactions.Add(1)
	return true, nil
}

// sameSegments reports whether every segment of want is in have.
func sameSegments(have, want []segmentInfo) bool {
	for _, s := range want {
		if !slices.Contains(have, s) {
			return false
		}
	}
	return true
}
