package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
)

// RawShape is the byte shape of one created resource as Kiln's create path
// writes it: one body blob and Tokens index rows of TokenSize bytes each.
type RawShape struct {
	BodySize  int // sealed body bytes (a typical Synthea Patient: ~1.5 KB)
	Tokens    int // blind index tokens per resource (~20)
	TokenSize int // bytes per token (16)
	// TokenIndex keys the token table by token, as a searchable store must
	// (random inserts: every token lands on a random page). Without it token
	// rows are appended by rowid: the pure cost of writing the bytes.
	TokenIndex bool
}

// RawInserter is the raw-insert ceiling used by benchmarks: it writes rows
// of the same number and sizes as the create path with plain prepared
// INSERTs into two minimal tables, with no crypto, no validation, no
// preconditions, no history indexes and no current pointer, in the same
// durability mode and file settings (WAL, synchronous, page size). Kiln's
// create path is measured against it (docs/benchmarks.md). It is not a
// store: nothing can be looked up in it.
//
// Its database should be a separate file from any Store.
type RawInserter struct {
	db      *sql.DB
	shape   RawShape
	ver     *sql.Stmt
	tok     *sql.Stmt
	next    atomic.Int64
	payload []byte // random, so compression-free sizes match sealed bodies
}

// OpenRawInserter creates the raw tables in the SQLite file at path, with
// the same connection settings as Open with opts (synchronous mode, page
// size, checkpoint interval, page cache).
func OpenRawInserter(ctx context.Context, path string, shape RawShape, opts Options) (*RawInserter, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: invalid database path %q", path)
	}
	if shape.BodySize < 0 || shape.Tokens < 0 || shape.TokenSize < 1 || shape.TokenSize > 64 {
		return nil, fmt.Errorf("sqlite: invalid raw shape %+v", shape)
	}
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", writerDSN(path, opts))
	if err != nil {
		return nil, fmt.Errorf("sqlite: raw open %s: %w", path, err)
	}
	// One connection, as SQLite has one writer: concurrent callers queue on
	// it, each with its own transaction and fsync.
	db.SetMaxOpenConns(1)
	r := &RawInserter{db: db, shape: shape, payload: make([]byte, shape.BodySize)}
	rand.Read(r.payload)
	conn, err := db.Conn(ctx)
	if err == nil {
		err = initFile(ctx, conn, opts)
		conn.Close()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: raw open %s: %w", path, err)
	}
	tokens := "CREATE TABLE IF NOT EXISTS raw_tokens (token BLOB NOT NULL, seq INTEGER NOT NULL)"
	if shape.TokenIndex {
		tokens = "CREATE TABLE IF NOT EXISTS raw_tokens (token BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (token, seq)) WITHOUT ROWID"
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS raw_versions (seq INTEGER PRIMARY KEY, body BLOB NOT NULL); "+tokens); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: raw schema: %w", err)
	}
	var max sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT max(seq) FROM raw_versions").Scan(&max); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: raw schema: %w", err)
	}
	r.next.Store(max.Int64)
	if r.ver, err = db.PrepareContext(ctx, "INSERT INTO raw_versions (seq, body) VALUES (?, ?)"); err == nil {
		r.tok, err = db.PrepareContext(ctx, "INSERT INTO raw_tokens (token, seq) VALUES (?, ?)")
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: raw prepare: %w", err)
	}
	return r, nil
}

// Insert writes n resources (each a body row and its token rows) in one
// transaction: n = 1 is one durable create per transaction; n > 1 is the
// best case of a group commit of n creates.
func (r *RawInserter) Insert(ctx context.Context, n int) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: raw begin: %w", err)
	}
	defer tx.Rollback()
	ver, tok := tx.StmtContext(ctx, r.ver), tx.StmtContext(ctx, r.tok)
	buf := make([]byte, (r.shape.TokenSize+7)/8*8)
	token := buf[:r.shape.TokenSize]
	for range n {
		seq := r.next.Add(1)
		if _, err := ver.ExecContext(ctx, seq, r.payload); err != nil {
			return fmt.Errorf("sqlite: raw insert: %w", err)
		}
		for i := range r.shape.Tokens {
			// Distinct, uniformly spread tokens, as HMAC outputs are.
			x := uint64(seq)<<8 | uint64(i)
			for j := 0; j < len(buf); j += 8 {
				x = splitmix64(x)
				binary.LittleEndian.PutUint64(buf[j:], x)
			}
			if _, err := tok.ExecContext(ctx, token, seq); err != nil {
				return fmt.Errorf("sqlite: raw insert token: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: raw commit: %w", err)
	}
	return nil
}

// Close closes the database.
func (r *RawInserter) Close() error {
	r.ver.Close()
	r.tok.Close()
	return r.db.Close()
}

// splitmix64 is a fast, well-mixing 64-bit permutation (Steele, Lea and
// Flood, "Fast splittable pseudorandom number generators", 2014).
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}
