package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned (wrapped) by every engine.
var (
	// ErrNotFound: no such account, resource or version.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a compare-and-swap precondition failed (a Write's
	// IfVersion, an account's Rev) or a row that must be new already exists.
	ErrConflict = errors.New("store: conflict")
	// ErrExists: CreateAccount of a name that already exists.
	ErrExists = errors.New("store: already exists")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// Ref names one resource in an account.
type Ref struct {
	Type string
	ID   string
}

// Version is one stored version of a resource.
type Version struct {
	Type        string
	ID          string
	VersionID   int64     // 1, 2, 3, ... per resource
	LastUpdated time.Time // UTC; engines keep at least microsecond precision
	Deleted     bool      // a delete marker; Body is then usually empty
	Body        []byte    // sealed ciphertext, opaque to the store
	// Seq is assigned by the store at commit: strictly increasing across the
	// whole store in commit order. History is ordered by Seq, and search
	// paging uses it as a snapshot marker.
	Seq int64
}

// SortValue is a sealed sort key stored beside a resource's tokens.
type SortValue struct {
	Slot  []byte // blind token naming the parameter (16 bytes)
	Value []byte // sealed value
}

// NoCheck as Write.IfVersion skips the precondition.
const NoCheck int64 = -1

// Write is one resource change inside a Commit.
type Write struct {
	Version Version // Type, ID, VersionID, LastUpdated, Deleted, Body; Seq is ignored
	// IfVersion is the current VersionID the writer expects: 0 means the
	// resource must not exist yet (no version at all), NoCheck skips the
	// check. A mismatch fails the whole Commit with ErrConflict.
	// Independently, (type, id, versionId) must be new or the commit fails
	// with ErrConflict.
	IfVersion int64
	// Tokens replace the resource's blind index tokens (the current version's
	// only). A delete passes none, so the resource stops matching.
	Tokens [][]byte
	// Sorts replace the resource's sealed sort values.
	Sorts []SortValue
}

// HistoryQuery selects versions for a history interaction.
type HistoryQuery struct {
	Type string // "" for system level
	ID   string // "" for type or system level; needs Type
	// Since keeps versions with LastUpdated >= Since (zero: no bound).
	Since time.Time
	// At keeps, per resource, only the version current at At: the latest
	// with LastUpdated <= At (zero: no such filter).
	At time.Time
	// BeforeSeq, when > 0, keeps versions with Seq < BeforeSeq (paging cursor).
	BeforeSeq int64
	// Limit caps the result; 0 means no limit.
	Limit int
}

// Match is a query against blind index tokens over current, non-deleted
// resources. Each clause is a set of tokens of which at least one must be
// present (OR); all clauses must hold (AND). With no clauses every current
// resource of the types matches.
type Match struct {
	Types   []string // resource types; empty means all types
	Clauses [][][]byte
	// MaxSeq, when > 0, restricts to resources whose current version
	// has Seq <= MaxSeq (a snapshot); paging is done by the caller.
	MaxSeq int64
}

// Account is an account record. Data is an opaque document owned by package
// accounts (its configuration and wrapped key ring); the store only keeps it
// and compares Rev.
type Account struct {
	Name      string
	CreatedAt time.Time
	Data      []byte
	// Rev is the row version for compare-and-swap, assigned by the store:
	// 1 at creation, +1 on each UpdateAccount.
	Rev int64
}

// Store is the storage interface every engine implements.
//
// Every method that takes an account returns ErrNotFound when that account
// does not exist. The current version of a resource is the one written by its
// latest successful Commit (highest Seq).
type Store interface {
	// Commit applies writes atomically for one account: every precondition
	// is checked, and either all versions, tokens and sorts are stored or
	// none. On success the stored Seq of each write is returned, in order.
	// An acknowledged Commit survives a crash (it is durable when it returns).
	Commit(ctx context.Context, account string, writes []Write) ([]int64, error)

	// Current returns the latest version of a resource, including a delete
	// marker. ErrNotFound when it never existed.
	Current(ctx context.Context, account string, ref Ref) (Version, error)
	// CurrentMany returns the latest versions of refs; missing refs are left
	// out. Order follows refs.
	CurrentMany(ctx context.Context, account string, refs []Ref) ([]Version, error)
	// VersionOf returns one version. ErrNotFound when absent.
	VersionOf(ctx context.Context, account string, ref Ref, versionID int64) (Version, error)
	// History returns versions newest first (by Seq descending).
	History(ctx context.Context, account string, q HistoryQuery) ([]Version, error)
	// CountHistory counts what History would return without Limit/BeforeSeq.
	CountHistory(ctx context.Context, account string, q HistoryQuery) (int, error)

	// Lookup returns the refs of current, non-deleted resources matching m,
	// ordered by (Type, ID).
	Lookup(ctx context.Context, account string, m Match) ([]Ref, error)
	// Sorts returns the sealed sort values stored under slot for refs.
	Sorts(ctx context.Context, account string, slot []byte, refs []Ref) (map[Ref][]byte, error)
	// ReplaceIndex swaps the tokens and sorts of one resource's current
	// version without writing a new version (used by $reindex). It fails with
	// ErrConflict when the current version is not versionID, and with
	// ErrNotFound when the resource does not exist.
	ReplaceIndex(ctx context.Context, account string, ref Ref, versionID int64, tokens [][]byte, sorts []SortValue) error
	// Scan lists current non-deleted resources of one type (all types when
	// typ is "") in (Type, ID) order after the given ref, up to limit.
	Scan(ctx context.Context, account string, typ string, after Ref, limit int) ([]Version, error)

	// CreateAccount stores a new account with Rev 1. ErrExists if taken.
	CreateAccount(ctx context.Context, a Account) (Account, error)
	// GetAccount returns an account. ErrNotFound when absent.
	GetAccount(ctx context.Context, name string) (Account, error)
	// ListAccounts returns all accounts ordered by name.
	ListAccounts(ctx context.Context) ([]Account, error)
	// UpdateAccount replaces Data if the stored Rev equals expectRev, and
	// returns the record with its new Rev. ErrConflict otherwise.
	UpdateAccount(ctx context.Context, name string, data []byte, expectRev int64) (Account, error)
	// DeleteAccount removes the account record (and with it the wrapped key
	// ring: a crypto-erase) and all its resources, tokens and sorts.
	DeleteAccount(ctx context.Context, name string) error

	// Lock takes a named lock that excludes other holders of the same name,
	// in this process and in every other node on the same database, until
	// unlock is called. Used for race-safe conditional create.
	Lock(ctx context.Context, name string) (unlock func(), err error)

	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases resources. Pending calls fail with ErrClosed.
	Close() error
}
