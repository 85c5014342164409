package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite"

	"github.com/kilnhealth/kiln/internal/store"
)

// Options tune an embedded store. The zero value is the durable default.
type Options struct {
	// Synchronous is SQLite's synchronous mode for the writer: "FULL" (the
	// default) fsyncs the WAL at every commit, so an acknowledged write
	// survives power loss. "NORMAL" syncs only at checkpoints: an
	// acknowledged write survives a process crash but may be lost on power
	// loss or an OS crash. Nothing else is accepted.
	Synchronous string
	// ReadConns is the size of the read connection pool (default 4).
	ReadConns int
	// BusyTimeout bounds how long a connection waits for SQLite's file lock
	// (default 10s); it only matters when something else holds the file.
	BusyTimeout time.Duration
	// CacheKiB is the writer's page cache in KiB (default 8192: 8 MiB);
	// each reader gets a quarter of it (at least 2 MiB). Bigger is not
	// better: SQLite scans the whole cache's hash table at the end of every
	// write transaction, which cost more CPU at 64 MiB than the cache saved
	// in reads (the OS page cache serves misses).
	CacheKiB int
	// PageSize is the SQLite page size in bytes, used when the file is
	// created (default 2048). Blind tokens land on random index pages, and
	// each dirty page is written whole to the WAL: smaller pages write
	// fewer bytes per create (measured: 4096 B pages ~45 KB/create, 2048 B
	// ~20 KB), while a typical sealed body (~1.5 KB) still fits in one page.
	PageSize int
	// CheckpointPages is the WAL size, in pages, that triggers an automatic
	// checkpoint (default 10000, 20 MB at 2 KB pages). A larger WAL lets a
	// checkpoint write each index page once for many commits.
	CheckpointPages int
	// MmapBytes is how much of the database file readers map into memory
	// (default 1 GiB; the mapping is virtual, pages come from the OS cache).
	MmapBytes int64
	// MergeEvery is how many committed resource versions may wait before
	// the writer merges their tokens into the token index (default 4096);
	// it also merges whenever it has been idle for MergeIdle. Pending tokens
	// are found by Lookup all the same (docs/storage.md).
	MergeEvery int
	// MergeIdle is the idle time after which pending tokens are merged
	// (default 100ms; negative: never, for tests of the pending path).
	MergeIdle time.Duration
	// MaxBatch caps the requests grouped into one transaction (default 256).
	MaxBatch int
	// VersionCache is how many current versions (sealed, as stored) are
	// kept in memory for reads by id (0: none, the default). The writer
	// keeps it coherent with its own commits, so enable it only when this
	// Store is the only handle writing the file — the normal case for
	// kiln serve, whose data directory belongs to one process. Another
	// handle's commits would not invalidate it.
	VersionCache int
	// Logger receives operational messages (never data). Default: discard.
	Logger *slog.Logger
}

// Store is the embedded engine. It implements store.Store; see the package
// comment for its invariants.
type Store struct {
	path     string
	log      *slog.Logger
	wdb      *sql.DB // exactly one connection, owned by the writer goroutine
	wconn    *sql.Conn
	rdb      *sql.DB
	r        readStmts
	pend     pendingCache
	ix       *indexer
	vcache   *versionCache // nil when disabled
	w        *writer
	locks    locks
	closed   atomic.Bool
	cdb      *sql.DB       // the checkpointer's connection
	ckptDone chan struct{} // closed when the checkpointer has stopped
	once     sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store at path, a file name (not a URI),
// and brings its schema up to date. The caller must Close it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: invalid database path %q", path)
	}
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, log: log, locks: locks{m: map[string]*lockEntry{}}, pend: pendingCache{byRef: map[pendingKey]pendingEntry{}, byToken: map[string]map[pendingKey]struct{}{}}}
	wdb, err := sql.Open("sqlite", writerDSN(path, opts))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s.wdb = wdb
	fail := func(err error) (*Store, error) {
		if s.wconn != nil {
			s.wconn.Close()
		}
		if s.rdb != nil {
			s.rdb.Close()
		}
		if s.cdb != nil {
			s.cdb.Close()
		}
		wdb.Close()
		return nil, err
	}
	s.wconn, err = wdb.Conn(ctx)
	if err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	if err := initFile(ctx, s.wconn, opts); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	if err := migrate(ctx, s.wconn); err != nil {
		return fail(err)
	}

	rq := url.Values{}
	rq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	rq.Add("_pragma", "query_only(1)")
	rq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", max(opts.CacheKiB/4, 2048)))
	// Reads of the main file go through a memory map: no read(2) per page
	// miss, and no copy. (SQLite reads WAL frames with read(2) regardless.)
	rq.Add("_pragma", fmt.Sprintf("mmap_size(%d)", opts.MmapBytes))
	s.rdb, err = sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		return fail(fmt.Errorf("sqlite: open readers %s: %w", path, err))
	}
	s.rdb.SetMaxOpenConns(opts.ReadConns)
	s.rdb.SetMaxIdleConns(opts.ReadConns)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if err := s.r.prepare(ctx, s.rdb); err != nil {
		return fail(err)
	}
	if s.cdb, err = sql.Open("sqlite", writerDSN(path, opts)); err != nil {
		return fail(fmt.Errorf("sqlite: open checkpointer %s: %w", path, err))
	}
	s.cdb.SetMaxOpenConns(1)
	s.vcache = newVersionCache(opts.VersionCache)
	s.w, err = newWriter(ctx, s.wconn, opts, log, s.vcache)
	if err != nil {
		return fail(err)
	}
	s.ckptDone = make(chan struct{})
	go s.checkpointer()
	s.ix = newIndexer(s, s.w.kick, log)
	if err := s.do(ctx, false, func(tx *wtx) error { return tx.removeBuilding() }); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: remove interrupted compaction: %w", path, err)
	}
	if s.w.pending > 0 {
		s.w.signal() // left pending by the last run
	}
	return s, nil
}

func (o *Options) normalize() error {
	o.Synchronous = strings.ToUpper(o.Synchronous)
	switch o.Synchronous {
	case "":
		o.Synchronous = "FULL"
	case "FULL", "NORMAL":
	default:
		return fmt.Errorf("sqlite: Synchronous must be FULL or NORMAL, not %q", o.Synchronous)
	}
	switch o.PageSize {
	case 0:
		o.PageSize = 2048
	case 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536:
	default:
		return fmt.Errorf("sqlite: PageSize %d is not a power of two in 512..65536", o.PageSize)
	}
	if o.CheckpointPages <= 0 {
		o.CheckpointPages = 10000
	}
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
	if o.CacheKiB <= 0 {
		o.CacheKiB = 8 << 10
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MergeEvery <= 0 {
		o.MergeEvery = 4096
	}
	if o.MmapBytes <= 0 {
		o.MmapBytes = 1 << 30
	}
	if o.MergeIdle == 0 {
		o.MergeIdle = 100 * time.Millisecond
	}
	return nil
}

// writerDSN is the connection string of a write connection. Its pragmas are
// per connection and touch nothing in the file.
func writerDSN(path string, o Options) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous("+o.Synchronous+")")
	// Checkpoints run on their own connection (see checkpointer), off the
	// commit path; the writer's own automatic checkpoint is only a safety
	// net should they fall far behind.
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", 4*o.CheckpointPages))
	// Deleted content is zeroed in place where that costs no extra I/O, so a
	// deleted account's wrapped key ring does not linger in its page.
	q.Add("_pragma", "secure_delete(FAST)")
	// Savepoint and statement journals stay in memory: they only serve
	// ROLLBACK TO within an open transaction, which a crash discards anyway.
	q.Add("_pragma", "temp_store(MEMORY)")
	// Blind tokens are random, so each create touches ~20 random index
	// pages; the page cache keeps the upper levels of that index.
	q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", o.CacheKiB))
	return path + "?" + q.Encode()
}

// initFile sets the page size (effective only while the file is new) and
// then WAL mode, which is persistent in the file.
func initFile(ctx context.Context, conn *sql.Conn, o Options) error {
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", o.PageSize)); err != nil {
		return err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	return nil
}

// Path returns the database file name; its -wal and -shm companions sit
// beside it.
func (s *Store) Path() string { return s.path }

// Close stops the writer (queued requests fail with store.ErrClosed) and
// closes every connection. Later calls fail with store.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	var err error
	s.once.Do(func() {
		s.ix.stop()
		s.w.stop()
		<-s.ckptDone
		s.r.close()
		err = errors.Join(s.w.closeStmts(), s.cdb.Close(), s.wconn.Close(), s.wdb.Close(), s.rdb.Close())
	})
	if err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	var one int
	if err := s.r.ping.QueryRowContext(ctx).Scan(&one); err != nil {
		return s.wrap(err, "ping")
	}
	return nil
}

// wrap turns a driver error into a package error; a closed store becomes
// store.ErrClosed.
func (s *Store) wrap(err error, format string, args ...any) error {
	if s.closed.Load() || errors.Is(err, sql.ErrConnDone) {
		err = store.ErrClosed
	}
	return fmt.Errorf("sqlite: "+format+": %w", append(args, err)...)
}

// SQLite primary result codes used here.
const (
	codeConstraint = 19
)

func isConstraint(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == codeConstraint
}

func micros(t time.Time) int64     { return t.UnixMicro() }
func fromMicros(m int64) time.Time { return time.UnixMicro(m).UTC() }

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// checkpointInterval is how often the checkpointer runs.
const checkpointInterval = 200 * time.Millisecond

// checkpointer copies WAL frames into the database file on a connection of
// its own, so the writer never waits for that I/O and its fsync: a PASSIVE
// checkpoint runs alongside commits and never blocks them. Once it has
// copied every frame, the writer's next transaction restarts the WAL from
// its beginning. It stops when the writer stops.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	var last int
	for {
		select {
		case <-s.w.quit:
			return
		case <-t.C:
		}
		if n := int(s.w.groups.Load()); n == last {
			continue // nothing committed since the last run
		} else {
			last = n
		}
		var busy, frames, done int
		err := s.cdb.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done)
		if err != nil {
			s.log.Warn("sqlite: checkpoint failed", "err", err)
		}
	}
}
