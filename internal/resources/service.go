package resources

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/store"
)

// Validator checks resources against the R4 model (*fhir.Model).
type Validator interface {
	Validate(res map[string]any) []fhir.Issue
	IsResourceType(name string) bool
}

// Indexer turns a resource into blind index tokens and sealed sort values.
// The search package implements it; a nil Indexer indexes nothing.
type Indexer interface {
	Index(keys *seal.AccountKeys, resourceType, id string, res map[string]any) (tokens [][]byte, sorts []store.SortValue, err error)
}

// Config wires a Service. Store, Accounts, Model and Rand are required.
type Config struct {
	Store    store.Store
	Accounts *accounts.Registry
	Model    Validator
	Indexer  Indexer
	Now      func() time.Time // defaults to time.Now
	Rand     io.Reader        // ids
	Logger   *slog.Logger
}

// Service reads and writes resources. Safe for concurrent use.
type Service struct {
	cfg Config
	// stripes serialise read-modify-write cycles (update, delete) on the
	// same resource within this process, so concurrent writers queue
	// instead of losing compare-and-swap races; writers on other nodes
	// still meet at the store's precondition and are retried.
	stripes [1024]sync.Mutex
}

// lockResource takes the stripe of one resource.
func (s *Service) lockResource(account, typ, id string) func() {
	h := fnv.New32a()
	h.Write([]byte(account))
	h.Write([]byte{0})
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(id))
	m := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	m.Lock()
	return m.Unlock
}

// maxAttempts bounds retries of a write that lost a race with another node.
const maxAttempts = 20

// New builds a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Accounts == nil || cfg.Model == nil || cfg.Rand == nil {
		return nil, errors.New("resources: Config needs Store, Accounts, Model and Rand")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg}, nil
}

// Resource is one version of a resource, opened.
type Resource struct {
	Type        string
	ID          string
	VersionID   int64
	LastUpdated time.Time
	Deleted     bool
	// Body is the resource JSON with id and meta maintained by the server;
	// nil for a delete marker.
	Body []byte
	// Seq is the store's commit sequence of this version.
	Seq int64
	// CreatedByPut is set on a version 1 that a PUT created (update as
	// create), so history can name the interaction; a version 1 without it
	// was created by a POST.
	CreatedByPut bool
}

// putCreatedMark precedes the resource JSON in the sealed plaintext of a
// version 1 that a PUT created. Resource JSON always starts with '{', so a
// plaintext without the mark is a POST's, as is every body written before
// the mark existed. It is inside the ciphertext: the store cannot see it.
const putCreatedMark = 0x01

// Outcome says what a write did.
type Outcome int

// Write outcomes.
const (
	Created   Outcome = iota + 1 // a new resource (201)
	Updated                      // a new version (200)
	Unchanged                    // identical update or repeated delete: no new version
)

// NoVersion as an ifMatch argument means "no If-Match header".
const NoVersion int64 = -1

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// Keys returns the account's keys, or the account's typed error.
func (s *Service) Keys(ctx context.Context, account string) (*seal.AccountKeys, error) {
	return s.cfg.Accounts.Keys(ctx, account)
}

// CheckType returns ErrUnknownType unless typ is a concrete R4 resource type.
func (s *Service) CheckType(typ string) error {
	if !s.cfg.Model.IsResourceType(typ) {
		return fmt.Errorf("%w: %q", ErrUnknownType, typ)
	}
	return nil
}

// Parse decodes and validates a resource body for type typ (empty: any).
func (s *Service) Parse(body []byte, typ string) (map[string]any, error) {
	res, err := fhir.Decode(body)
	if err != nil {
		var de *fhir.DecodeError
		if errors.As(err, &de) {
			return nil, invalid(400, "structure", "", "%s", de.Error())
		}
		return nil, invalid(400, "structure", "", "%v", err)
	}
	return s.Check(res, typ)
}

// Check validates a resource already decoded by fhir.Decode for type typ
// (empty: any), exactly as Parse does after decoding, and returns it.
func (s *Service) Check(res map[string]any, typ string) (map[string]any, error) {
	rt, _ := res["resourceType"].(string)
	if typ != "" && rt != typ {
		if rt == "" {
			return nil, invalid(400, "required", "resourceType", "resourceType is missing; the URL expects %s", typ)
		}
		return nil, invalid(400, "invalid", "resourceType", "resourceType %q does not match the URL's type %s", rt, typ)
	}
	if issues := s.cfg.Model.Validate(res); hasErrors(issues) {
		return nil, &InvalidError{Status: 400, Issues: issues}
	}
	return res, nil
}

func hasErrors(issues []fhir.Issue) bool {
	for _, i := range issues {
		if i.Severity == "error" || i.Severity == "fatal" {
			return true
		}
	}
	return false
}

// NewID returns a fresh server-assigned id (a random UUID).
func (s *Service) NewID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return "", fmt.Errorf("resources: id: %w", err)
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// Binding returns the sealing binding of a version's body.
func Binding(account, typ, id string, version int64) seal.Binding {
	return seal.Binding{Account: account, Type: typ, ID: id, VersionID: version, Purpose: "body"}
}

// stamp sets id and meta.versionId/lastUpdated and renders the body.
func stamp(res map[string]any, id string, version int64, at time.Time) ([]byte, error) {
	res["id"] = id
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"] = fmt.Sprint(version)
	meta["lastUpdated"] = at.Format("2006-01-02T15:04:05.000Z07:00")
	res["meta"] = meta
	return Marshal(res)
}

// Prepared is a write ready to commit, with the resource it will create.
type Prepared struct {
	Write    store.Write
	Resource Resource
	Outcome  Outcome
}

// PrepareCreate builds the write of a new resource with id (new if empty)
// for an already validated res.
func (s *Service) PrepareCreate(ctx context.Context, keys *seal.AccountKeys, typ, id string, res map[string]any) (Prepared, error) {
	if id == "" {
		var err error
		if id, err = s.NewID(); err != nil {
			return Prepared{}, err
		}
	}
	return s.prepare(keys, typ, id, 1, 0, res, Created, false)
}

// prepare indexes and seals res as the given version. byPut marks a
// version 1 created by a PUT (see putCreatedMark).
func (s *Service) prepare(keys *seal.AccountKeys, typ, id string, version, ifVersion int64, res map[string]any, oc Outcome, byPut bool) (Prepared, error) {
	at := s.now()
	body, err := stamp(res, id, version, at)
	if err != nil {
		return Prepared{}, err
	}
	var tokens [][]byte
	var sorts []store.SortValue
	if s.cfg.Indexer != nil {
		if tokens, sorts, err = s.cfg.Indexer.Index(keys, typ, id, res); err != nil {
			if v := s.vanished(context.Background(), keys.Account(), err); v != err {
				return Prepared{}, v
			}
			return Prepared{}, fmt.Errorf("resources: index %s/%s: %w", typ, id, err)
		}
	}
	plain := body
	if byPut {
		plain = append([]byte{putCreatedMark}, body...)
	}
	sealed, err := keys.Seal(plain, Binding(keys.Account(), typ, id, version))
	if err != nil {
		return Prepared{}, s.vanished(context.Background(), keys.Account(), err)
	}
	v := store.Version{Type: typ, ID: id, VersionID: version, LastUpdated: at, Body: sealed}
	return Prepared{
		Write:    store.Write{Version: v, IfVersion: ifVersion, Tokens: tokens, Sorts: sorts},
		Resource: Resource{Type: typ, ID: id, VersionID: version, LastUpdated: at, Body: body, CreatedByPut: byPut},
		Outcome:  oc,
	}, nil
}

// Create stores a new resource with a server-assigned id.
func (s *Service) Create(ctx context.Context, account, typ string, body []byte) (Resource, error) {
	keys, err := s.Keys(ctx, account)
	if err != nil {
		return Resource{}, err
	}
	if err := s.CheckType(typ); err != nil {
		return Resource{}, err
	}
	res, err := s.Parse(body, typ)
	if err != nil {
		return Resource{}, err
	}
	p, err := s.PrepareCreate(ctx, keys, typ, "", res)
	if err != nil {
		return Resource{}, err
	}
	return s.commitOne(ctx, account, p)
}

func (s *Service) commitOne(ctx context.Context, account string, p Prepared) (Resource, error) {
	seqs, err := s.cfg.Store.Commit(ctx, account, []store.Write{p.Write})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Resource{}, fmt.Errorf("%w: %s/%s", ErrConflict, p.Resource.Type, p.Resource.ID)
		}
		return Resource{}, fmt.Errorf("resources: commit %s/%s: %w", p.Resource.Type, p.Resource.ID, s.vanished(ctx, account, err))
	}
	p.Resource.Seq = seqs[0]
	return p.Resource, nil
}

// PrepareUpdate builds the write that makes res (already validated, id
// checked) the next version of typ/id, given the current version (nil when
// the resource never existed). ifMatch is NoVersion or the version the
// client expects.
func (s *Service) PrepareUpdate(keys *seal.AccountKeys, typ, id string, res map[string]any, cur *Resource, ifMatch int64) (Prepared, error) {
	if cur == nil {
		if ifMatch != NoVersion {
			return Prepared{}, &PreconditionError{Want: ifMatch, Have: 0, Msg: fmt.Sprintf("If-Match version %d, but %s/%s does not exist", ifMatch, typ, id)}
		}
		return s.prepare(keys, typ, id, 1, 0, res, Created, true)
	}
	if ifMatch != NoVersion && ifMatch != cur.VersionID {
		return Prepared{}, &PreconditionError{Want: ifMatch, Have: cur.VersionID}
	}
	if !cur.Deleted && sameContent(res, cur.Body) {
		return Prepared{Resource: *cur, Outcome: Unchanged}, nil
	}
	oc := Updated
	if cur.Deleted {
		oc = Created
	}
	return s.prepare(keys, typ, id, cur.VersionID+1, cur.VersionID, res, oc, false)
}

// sameContent reports whether res equals the stored body apart from
// meta.versionId and meta.lastUpdated.
func sameContent(res map[string]any, stored []byte) bool {
	old, err := fhir.Decode(stored)
	if err != nil {
		return false
	}
	strip := func(m map[string]any) map[string]any {
		c := make(map[string]any, len(m))
		for k, v := range m {
			c[k] = v
		}
		if meta, ok := m["meta"].(map[string]any); ok {
			mc := map[string]any{}
			for k, v := range meta {
				if k != "versionId" && k != "lastUpdated" {
					mc[k] = v
				}
			}
			if len(mc) == 0 {
				delete(c, "meta")
			} else {
				c["meta"] = mc
			}
		}
		return c
	}
	return reflect.DeepEqual(strip(res), strip(old))
}

// Update makes body the next version of typ/id, or creates it with that id.
// Without If-Match a concurrent writer is retried (last writer wins); with
// If-Match a concurrent change fails the precondition.
func (s *Service) Update(ctx context.Context, account, typ, id string, body []byte, ifMatch int64) (Resource, Outcome, error) {
	keys, err := s.Keys(ctx, account)
	if err != nil {
		return Resource{}, 0, err
	}
	if err := s.CheckType(typ); err != nil {
		return Resource{}, 0, err
	}
	res, err := s.Parse(body, typ)
	if err != nil {
		return Resource{}, 0, err
	}
	rid, _ := res["id"].(string)
	if rid == "" {
		return Resource{}, 0, invalid(400, "required", typ+".id", "the resource has no id; an update must carry the id %q of its URL", id)
	}
	if rid != id {
		return Resource{}, 0, invalid(400, "invalid", typ+".id", "the resource id %q does not match the URL id %q", rid, id)
	}
	defer s.lockResource(account, typ, id)()
	for attempt := 1; ; attempt++ {
		cur, err := s.current(ctx, keys, account, typ, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Resource{}, 0, err
		}
		p, err := s.PrepareUpdate(keys, typ, id, cloneMap(res), cur, ifMatch)
		if err != nil {
			return Resource{}, 0, err
		}
		if p.Outcome == Unchanged {
			return p.Resource, Unchanged, nil
		}
		r, err := s.commitOne(ctx, account, p)
		if errors.Is(err, ErrConflict) {
			if ifMatch != NoVersion {
				return Resource{}, 0, &PreconditionError{Want: ifMatch, Msg: "the resource changed concurrently"}
			}
			if attempt < maxAttempts {
				backoff(attempt)
				continue
			}
		}
		return r, p.Outcome, err
	}
}

// backoff sleeps a little longer after each lost race (up to ~10ms).
func backoff(attempt int) {
	time.Sleep(time.Duration(min(attempt, 20)) * 500 * time.Microsecond)
}

func cloneMap(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		if mm, ok := v.(map[string]any); ok && k == "meta" {
			v = cloneMap(mm)
		}
		c[k] = v
	}
	return c
}

// current returns the opened current version, ErrNotFound if none.
func (s *Service) current(ctx context.Context, keys *seal.AccountKeys, account, typ, id string) (*Resource, error) {
	v, err := s.cfg.Store.Current(ctx, account, store.Ref{Type: typ, ID: id})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("resources: read %s/%s: %w", typ, id, err)
	}
	r, err := s.Open(keys, account, v)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// vanished turns a failure caused by the account disappearing or losing
// key access while the request ran (the store no longer knows the account,
// or its keys were wiped) into the account's own error, so the client gets
// 404 or 403 rather than a server error. Other errors are returned as they are.
func (s *Service) vanished(ctx context.Context, account string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, kerr := s.cfg.Store.GetAccount(ctx, account); errors.Is(kerr, store.ErrNotFound) {
			return accounts.ErrNotFound
		}
	case errors.Is(err, seal.ErrWiped), errors.Is(err, seal.ErrOpen):
		if _, kerr := s.Keys(ctx, account); kerr != nil {
			return kerr
		}
	}
	return err
}

// Open decrypts one stored version.
func (s *Service) Open(keys *seal.AccountKeys, account string, v store.Version) (Resource, error) {
	r := Resource{Type: v.Type, ID: v.ID, VersionID: v.VersionID, LastUpdated: v.LastUpdated.UTC(), Deleted: v.Deleted, Seq: v.Seq}
	if v.Deleted {
		return r, nil
	}
	body, err := keys.Open(v.Body, Binding(account, v.Type, v.ID, v.VersionID))
	if err != nil {
		if v := s.vanished(context.Background(), account, err); v != err {
			return Resource{}, v
		}
		return Resource{}, fmt.Errorf("resources: open %s/%s/_history/%d: %w", v.Type, v.ID, v.VersionID, err)
	}
	if len(body) > 0 && body[0] == putCreatedMark {
		body, r.CreatedByPut = body[1:], true
	}
	r.Body = body
	return r, nil
}

// Read returns the current version; *GoneError when it is deleted.
func (s *Service) Read(ctx context.Context, account, typ, id string) (Resource, error) {
	keys, err := s.Keys(ctx, account)
	if err != nil {
		return Resource{}, err
	}
	if err := s.CheckType(typ); err != nil {
		return Resource{}, err
	}
	r, err := s.current(ctx, keys, account, typ, id)
	if err != nil {
		return Resource{}, err
	}
	if r.Deleted {
		return *r, &GoneError{Type: typ, ID: id, VersionID: r.VersionID}
	}
	return *r, nil
}

// VRead returns one version; *GoneError for a delete marker.
func (s *Service) VRead(ctx context.Context, account, typ, id string, version int64) (Resource, error) {
	keys, err := s.Keys(ctx, account)
	if err != nil {
		return Resource{}, err
	}
	if err := s.CheckType(typ); err != nil {
		return Resource{}, err
	}
	v, err := s.cfg.Store.VersionOf(ctx, account, store.Ref{Type: typ, ID: id}, version)
	if errors.Is(err, store.ErrNotFound) {
		return Resource{}, ErrNotFound
	}
	if err != nil {
		return Resource{}, fmt.Errorf("resources: vread %s/%s/%d: %w", typ, id, version, err)
	}
	r, err := s.Open(keys, account, v)
	if err != nil {
		return Resource{}, err
	}
	if r.Deleted {
		return r, &GoneError{Type: typ, ID: id, VersionID: r.VersionID}
	}
	return r, nil
}

// PrepareDelete builds the delete marker for cur (nil: nothing to delete).
func (s *Service) PrepareDelete(typ, id string, cur *Resource, ifMatch int64) (Prepared, error) {
	if cur == nil {
		if ifMatch != NoVersion {
			return Prepared{}, &PreconditionError{Want: ifMatch, Have: 0, Msg: fmt.Sprintf("If-Match version %d, but %s/%s does not exist", ifMatch, typ, id)}
		}
		return Prepared{Resource: Resource{Type: typ, ID: id}, Outcome: Unchanged}, nil
	}
	if ifMatch != NoVersion && ifMatch != cur.VersionID {
		return Prepared{}, &PreconditionError{Want: ifMatch, Have: cur.VersionID}
	}
	if cur.Deleted {
		return Prepared{Resource: *cur, Outcome: Unchanged}, nil
	}
	at := s.now()
	v := store.Version{Type: typ, ID: id, VersionID: cur.VersionID + 1, LastUpdated: at, Deleted: true}
	return Prepared{
		Write:    store.Write{Version: v, IfVersion: cur.VersionID},
		Resource: Resource{Type: typ, ID: id, VersionID: v.VersionID, LastUpdated: at, Deleted: true},
		Outcome:  Updated,
	}, nil
}

// Delete writes a delete marker. Deleting a missing or already deleted
// resource succeeds without a new version (Outcome Unchanged).
func (s *Service) Delete(ctx context.Context, account, typ, id string, ifMatch int64) (Resource, Outcome, error) {
	keys, err := s.Keys(ctx, account)
	if err != nil {
		return Resource{}, 0, err
	}
	if err := s.CheckType(typ); err != nil {
		return Resource{}, 0, err
	}
	defer s.lockResource(account, typ, id)()
	for attempt := 1; ; attempt++ {
		cur, err := s.current(ctx, keys, account, typ, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Resource{}, 0, err
		}
		p, err := s.PrepareDelete(typ, id, cur, ifMatch)
		if err != nil || p.Outcome == Unchanged {
			return p.Resource, p.Outcome, err
		}
		r, err := s.commitOne(ctx, account, p)
		if errors.Is(err, ErrConflict) && ifMatch != NoVersion {
			return Resource{}, 0, &PreconditionError{Want: ifMatch, Msg: "the resource changed concurrently"}
		}
		if errors.Is(err, ErrConflict) && attempt < maxAttempts {
			backoff(attempt)
			continue
		}
		return r, p.Outcome, err
	}
}

// History returns versions newest first, opened.
func (s *Service) History(ctx context.Context, account string, q store.HistoryQuery) ([]Resource, error) {
	keys, err := s.Keys(ctx, account)
	if err != nil {
		return nil, err
	}
	if q.Type != "" {
		if err := s.CheckType(q.Type); err != nil {
			return nil, err
		}
	}
	vs, err := s.cfg.Store.History(ctx, account, q)
	if err != nil {
		return nil, fmt.Errorf("resources: history: %w", s.vanished(ctx, account, err))
	}
	out := make([]Resource, 0, len(vs))
	for _, v := range vs {
		r, err := s.Open(keys, account, v)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// CountHistory counts the versions a history query selects.
func (s *Service) CountHistory(ctx context.Context, account string, q store.HistoryQuery) (int, error) {
	if _, err := s.Keys(ctx, account); err != nil {
		return 0, err
	}
	n, err := s.cfg.Store.CountHistory(ctx, account, q)
	if err != nil {
		return 0, fmt.Errorf("resources: count history: %w", s.vanished(ctx, account, err))
	}
	return n, nil
}

// Commit stores prepared writes atomically (for transactions).
func (s *Service) Commit(ctx context.Context, account string, ps []Prepared) ([]Resource, error) {
	var writes []store.Write
	for _, p := range ps {
		if p.Outcome != Unchanged {
			writes = append(writes, p.Write)
		}
	}
	out := make([]Resource, len(ps))
	var seqs []int64
	if len(writes) > 0 {
		var err error
		seqs, err = s.cfg.Store.Commit(ctx, account, writes)
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("%w: %v", ErrConflict, err)
		}
		if err != nil {
			return nil, fmt.Errorf("resources: commit: %w", s.vanished(ctx, account, err))
		}
	}
	i := 0
	for j, p := range ps {
		out[j] = p.Resource
		if p.Outcome != Unchanged {
			out[j].Seq = seqs[i]
			i++
		}
	}
	return out, nil
}

// Current returns the opened current version (nil, ErrNotFound if none).
func (s *Service) Current(ctx context.Context, keys *seal.AccountKeys, account, typ, id string) (*Resource, error) {
	return s.current(ctx, keys, account, typ, id)
}
