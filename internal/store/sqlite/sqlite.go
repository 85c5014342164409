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
	// CacheKiB is the writer's page cache in KiB (default 65536: 64 MiB);
	// each reader gets a quarter of it.
	CacheKiB int
	// MaxBatch caps the requests grouped into one transaction (default 256).
	MaxBatch int
	// Logger receives operational messages (never data). Default: discard.
	Logger *slog.Logger
}

// Store is the embedded engine. It implements store.Store; see the package
// comment for its invariants.
type Store struct {
	path   string
	log    *slog.Logger
	wdb    *sql.DB // exactly one connection, owned by the writer goroutine
	wconn  *sql.Conn
	rdb    *sql.DB
	r      readStmts
	w      *writer
	locks  locks
	closed atomic.Bool
	once   sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store at path, a file name (not a URI),
// and brings its schema up to date. The caller must Close it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: invalid database path %q", path)
	}
	sync := strings.ToUpper(opts.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: Synchronous must be FULL or NORMAL, not %q", opts.Synchronous)
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.CacheKiB <= 0 {
		opts.CacheKiB = 64 << 10
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, log: log, locks: locks{m: map[string]*lockEntry{}}}

	busy := fmt.Sprint(opts.BusyTimeout.Milliseconds())
	wq := url.Values{}
	wq.Add("_pragma", "busy_timeout("+busy+")")
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous("+sync+")")
	// Deleted content is zeroed in place where that costs no extra I/O, so a
	// deleted account's wrapped key ring does not linger in its page.
	wq.Add("_pragma", "secure_delete(FAST)")
	// A page cache big enough for the hot part of the token index: blind
	// tokens are random, so each create touches ~20 random index pages.
	wq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", opts.CacheKiB))
	wdb, err := sql.Open("sqlite", path+"?"+wq.Encode())
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
		wdb.Close()
		return nil, err
	}
	s.wconn, err = wdb.Conn(ctx)
	if err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	var mode string
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("sqlite: open %s: journal mode is %q, want wal", path, mode))
	}
	if err := migrate(ctx, s.wconn); err != nil {
		return fail(err)
	}

	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout("+busy+")")
	rq.Add("_pragma", "query_only(1)")
	rq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", max(opts.CacheKiB/4, 2048)))
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
	s.w, err = newWriter(ctx, s.wconn, opts.MaxBatch, log)
	if err != nil {
		return fail(err)
	}
	return s, nil
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
		s.w.stop()
		s.r.close()
		err = errors.Join(s.w.closeStmts(), s.wconn.Close(), s.wdb.Close(), s.rdb.Close())
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
