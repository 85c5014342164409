package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kilnhealth/kiln/internal/store"
)

// Options tune an Open. The zero value is a sensible default.
type Options struct {
	// MaxConns caps the main connection pool (0: pgxpool's default, the
	// larger of 4 and the number of CPUs). A pool_max_conns parameter in the
	// URL is honoured when this is 0.
	MaxConns int32
	// LockConns caps the separate pool of connections that hold named locks
	// (0: 16). Locks have their own pool so that waiters can never starve
	// the commits that lock holders are waiting for.
	LockConns int32
	// NoNotify turns off pg_notify on account changes, for engines without
	// LISTEN/NOTIFY (CockroachDB, YugabyteDB); SubscribeAccounts then fails.
	NoNotify bool
	// Now is the clock for account creation times (nil: time.Now).
	Now func() time.Time
	// Logger receives operational messages (nil: slog.Default()). Nothing
	// sealed is ever logged.
	Logger *slog.Logger
}

// Store is a store.Store on PostgreSQL. It is safe for concurrent use; any
// number of Stores, in this process or on other nodes, may share one
// database and schema.
type Store struct {
	pool     *pgxpool.Pool
	lockPool *pgxpool.Pool
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	schema   string // current_schema() of the pool's connections

	// base is cancelled by Close, which makes calls in flight fail.
	base   context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	mu    sync.Mutex
	held  map[*heldLock]struct{} // advisory locks held, stolen by Close
	local map[string]*localLock  // per-name in-process queue before the database lock

	// seqSQL returns the last of $1 new Seq values. It is the single-row
	// counter; tests swap in a plain sequence to measure what commit-order
	// Seq costs.
	seqSQL string
}

var _ store.Store = (*Store)(nil)

const counterSQL = `UPDATE kiln_seq SET value = value + $1 WHERE id = 1 RETURNING value`

// Open connects to the database at url (a postgres:// URL or key=value
// DSN as accepted by pgx), applies any missing schema migrations and returns
// the Store. The schema used is the connection's current schema: add
// search_path=NAME to the URL to use another one (it must exist).
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err) // pgx redacts the password
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	lockCfg := cfg.Copy()
	lockCfg.MaxConns = opts.LockConns
	if lockCfg.MaxConns <= 0 {
		lockCfg.MaxConns = 16
	}
	lockCfg.MinConns = 0

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	lockPool, err := pgxpool.NewWithConfig(ctx, lockCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		lockPool.Close()
		return nil, fmt.Errorf("postgres: open: connect: %w", err)
	}
	var version string
	if err := pool.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		pool.Close()
		lockPool.Close()
		return nil, fmt.Errorf("postgres: open: read the server version: %w", err)
	}
	if strings.Contains(version, "CockroachDB") {
		// Its session advisory-lock builtins are stubs that always succeed:
		// Lock would not exclude anyone. See docs/postgres.md.
		pool.Close()
		lockPool.Close()
		return nil, errors.New("postgres: open: CockroachDB is not supported: its pg_advisory_lock does not exclude other sessions, which named locks and migrations rely on")
	}
	if schema == nil {
		pool.Close()
		lockPool.Close()
		return nil, errors.New("postgres: open: no schema on the search_path exists: create it first")
	}
	schemaVer, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		lockPool.Close()
		return nil, fmt.Errorf("postgres: open: migrate: %w", err)
	}
	s := &Store{
		pool:     pool,
		lockPool: lockPool,
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		schema:   *schema,
		held:     make(map[*heldLock]struct{}),
		local:    make(map[string]*localLock),
		seqSQL:   counterSQL,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.log.Debug("postgres store open", "schema", s.schema, "schemaVersion", schemaVer, "server", version)
	return s, nil
}

// enter starts a call: it fails with ErrClosed after Close, and returns a
// context that Close cancels.
func (s *Store) enter(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, store.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.base, cancel)
	return ctx, func() { stop(); cancel() }, nil
}

// fail wraps err for operation op, translating database errors into the
// store sentinels.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrClosed) || s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("postgres: %s: %w: a row that must be new exists (%s)", op, store.ErrConflict, pe.ConstraintName)
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return fmt.Errorf("postgres: %s: %w: %s", op, store.ErrConflict, pe.Message)
		}
		return fmt.Errorf("postgres: %s: %s (SQLSTATE %s)", op, pe.Message, pe.Code)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// retryable reports a transaction failure that a fresh attempt may not hit.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return s.fail("ping", err)
	}
	defer done()
	return s.fail("ping", s.pool.Ping(ctx))
}

// Close cancels calls in flight (they fail with ErrClosed), releases every
// named lock this Store holds (their connections are closed, so the server
// drops the locks), ends account subscriptions and closes the pools. It is
// idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cancel()
	s.mu.Lock()
	held := s.held
	s.held = make(map[*heldLock]struct{})
	s.mu.Unlock()
	for h := range held {
		h.destroy()
	}
	s.pool.Close()
	s.lockPool.Close()
	return nil
}

// accountExists reports whether the account row exists, for reads whose
// result is empty (every call on a missing account is ErrNotFound).
func accountExists(ctx context.Context, q querier, account string) error {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM kiln_accounts WHERE name = $1`, account).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("account %q: %w", account, store.ErrNotFound)
	}
	return err
}

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// lockKey maps a lock name to a bigint advisory-lock key: the first 8 bytes
// of SHA-256 over the schema and the name. A collision only makes two names
// exclude each other, never lets two holders in.
func (s *Store) lockKey(name string) int64 {
	h := sha256.New()
	h.Write([]byte("kiln-lock\x00"))
	h.Write([]byte(s.schema))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(binary.BigEndian.Uint64(h.Sum(nil)[:8]))
}

// usec truncates t to the microsecond, in UTC: what timestamptz keeps.
func usec(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// usecCeil rounds t up to the microsecond, in UTC.
func usecCeil(t time.Time) time.Time {
	f := usec(t)
	if f.Before(t) {
		f = f.Add(time.Microsecond)
	}
	return f
}
