package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kilnhealth/kiln/internal/store"
)

// NotifyChannel is the LISTEN/NOTIFY channel on which UpdateAccount,
// CreateAccount and DeleteAccount announce a changed account; the payload
// is the account name.
const NotifyChannel = "kiln_accounts"

func scanAccount(row pgx.Row) (store.Account, error) {
	var a store.Account
	if err := row.Scan(&a.Name, &a.CreatedAt, &a.Data, &a.Rev); err != nil {
		return store.Account{}, err
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

// CreateAccount stores a new account with Rev 1 (see store.Store). A zero
// CreatedAt is set from the Store's clock; times keep microseconds.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) (store.Account, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return store.Account{}, s.fail("create account", err)
	}
	defer done()
	if a.Name == "" || !validText(a.Name) {
		return store.Account{}, errors.New("postgres: create account: the name is empty or not valid UTF-8 without NUL")
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	a.CreatedAt = usec(a.CreatedAt)
	data := a.Data
	if data == nil {
		data = []byte{}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var inserted bool
		if err := tx.QueryRow(ctx, `INSERT INTO kiln_accounts (name, created_at, data, rev) VALUES ($1, $2, $3, 1)
			ON CONFLICT (name) DO NOTHING RETURNING true`, a.Name, a.CreatedAt, data).Scan(&inserted); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("account %q: %w", a.Name, store.ErrExists)
			}
			return err
		}
		return s.notify(ctx, tx, a.Name)
	})
	if err != nil {
		return store.Account{}, s.fail("create account", err)
	}
	a.Rev = 1
	return a, nil
}

// GetAccount returns an account (see store.Store).
func (s *Store) GetAccount(ctx context.Context, name string) (store.Account, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return store.Account{}, s.fail("get account", err)
	}
	defer done()
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT name, created_at, data, rev FROM kiln_accounts WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Account{}, s.fail("get account", fmt.Errorf("account %q: %w", name, store.ErrNotFound))
	}
	return a, s.fail("get account", err)
}

// ListAccounts returns all accounts ordered by name (bytewise).
func (s *Store) ListAccounts(ctx context.Context) ([]store.Account, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("list accounts", err)
	}
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT name, created_at, data, rev FROM kiln_accounts ORDER BY name`)
	if err != nil {
		return nil, s.fail("list accounts", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Account, error) { return scanAccount(row) })
	return out, s.fail("list accounts", err)
}

// UpdateAccount replaces Data when the stored Rev is expectRev (see
// store.Store), and announces the change on NotifyChannel in the same
// transaction, so listeners hear of it only once it is committed.
func (s *Store) UpdateAccount(ctx context.Context, name string, data []byte, expectRev int64) (store.Account, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return store.Account{}, s.fail("update account", err)
	}
	defer done()
	if data == nil {
		data = []byte{}
	}
	var a store.Account
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		a, err = scanAccount(tx.QueryRow(ctx, `UPDATE kiln_accounts SET data = $2, rev = rev + 1
			WHERE name = $1 AND rev = $3 RETURNING name, created_at, data, rev`, name, data, expectRev))
		if errors.Is(err, pgx.ErrNoRows) {
			var rev int64
			switch err := tx.QueryRow(ctx, `SELECT rev FROM kiln_accounts WHERE name = $1`, name).Scan(&rev); {
			case errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("account %q: %w", name, store.ErrNotFound)
			case err != nil:
				return err
			}
			return fmt.Errorf("%w: account %q is at rev %d, expected %d", store.ErrConflict, name, rev, expectRev)
		}
		if err != nil {
			return err
		}
		return s.notify(ctx, tx, name)
	})
	if err != nil {
		return store.Account{}, s.fail("update account", err)
	}
	return a, nil
}

// DeleteAccount removes the account row and all its resources, tokens and
// sorts in one transaction (see store.Store). Deleting the row first takes
// its lock, so commits in flight finish before and later ones find no
// account.
func (s *Store) DeleteAccount(ctx context.Context, name string) error {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return s.fail("delete account", err)
	}
	defer done()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM kiln_accounts WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("account %q: %w", name, store.ErrNotFound)
		}
		for _, table := range []string{"kiln_current", "kiln_versions"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE account = $1`, name); err != nil {
				return fmt.Errorf("delete from %s: %w", table, err)
			}
		}
		return s.notify(ctx, tx, name)
	})
	return s.fail("delete account", err)
}

// notify queues a notification of a changed account, delivered when tx
// commits.
func (s *Store) notify(ctx context.Context, tx pgx.Tx, name string) error {
	if s.opts.NoNotify {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, name); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// AccountSubscriber is the optional ability of an engine to announce
// account changes made by any node. Package accounts finds it by type
// assertion on the store.Store and, when present, reloads an account as soon
// as its name arrives instead of waiting for the next polling interval.
type AccountSubscriber interface {
	// SubscribeAccounts returns a channel that receives the name of every
	// account created, updated or deleted by any node after the call
	// returns. An empty name means notifications may have been missed (the
	// connection was lost and re-established): reload every account. The
	// channel is closed when ctx ends or the store is closed. A slow reader
	// delays delivery; nothing is dropped except across reconnections.
	SubscribeAccounts(ctx context.Context) (<-chan string, error)
}

var _ AccountSubscriber = (*Store)(nil)

// SubscribeAccounts listens on NotifyChannel on a dedicated connection
// (see AccountSubscriber). It fails when Options.NoNotify is set.
func (s *Store) SubscribeAccounts(ctx context.Context) (<-chan string, error) {
	if s.opts.NoNotify {
		return nil, errors.New("postgres: subscribe accounts: notifications are turned off (Options.NoNotify)")
	}
	lctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("subscribe accounts", err)
	}
	conn, err := s.listen(lctx)
	if err != nil {
		done()
		return nil, s.fail("subscribe accounts", err)
	}
	ch := make(chan string, 64)
	go s.relay(lctx, done, conn, ch)
	return ch, nil
}

func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+NotifyChannel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

// relay forwards notifications until ctx ends, reconnecting with backoff
// when the connection is lost.
func (s *Store) relay(ctx context.Context, done context.CancelFunc, conn *pgx.Conn, ch chan<- string) {
	defer close(ch)
	defer done()
	backoff := 100 * time.Millisecond
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			select {
			case ch <- n.Payload:
			case <-ctx.Done():
			}
			continue
		}
		conn.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres: account notifications lost their connection; reconnecting", "err", err)
		for {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			conn, err = s.listen(ctx)
			if err == nil {
				backoff = 100 * time.Millisecond
				break
			}
			backoff = min(2*backoff, 10*time.Second)
			s.log.Warn("postgres: account notifications: reconnect failed", "err", err, "retryIn", backoff)
		}
		select {
		case ch <- "": // tell the reader it may have missed changes
		case <-ctx.Done():
			conn.Close(context.WithoutCancel(ctx))
			return
		}
	}
}
