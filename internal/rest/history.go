package rest

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/store"
)

// Paging limits for history.
const (
	defaultCount = 20
	maxCount     = 1000
)

// history handles GET [base]/_history, [base]/{type}/_history and
// [base]/{type}/{id}/_history with _since, _at, _count and paging links.
// Pages are cut by the store's commit sequence, so a page never repeats or
// skips versions when writes happen between page requests.
func (a *API) history(w http.ResponseWriter, r *http.Request, req *request, typ, id string) {
	q := r.URL.Query()
	hq := store.HistoryQuery{Type: typ, ID: id}
	if id != "" && !validID(id) {
		a.writeError(w, r, badRequest("id", "%q is not a valid FHIR id", id))
		return
	}
	for _, name := range []string{"_since", "_at"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		t, err := parseInstantParam(v)
		if err != nil {
			a.writeError(w, r, badRequest(name, "%s: %v", name, err))
			return
		}
		if name == "_since" {
			hq.Since = t
		} else {
			hq.At = t
		}
	}
	count := defaultCount
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			a.writeError(w, r, badRequest("_count", "_count must be a non-negative integer; got %q", v))
			return
		}
		count = min(n, maxCount)
	}
	if v := q.Get("_page"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			a.writeError(w, r, badRequest("_page", "_page is not a valid page cursor"))
			return
		}
		hq.BeforeSeq = n
	}
	total, err := a.res.CountHistory(r.Context(), req.account, store.HistoryQuery{Type: hq.Type, ID: hq.ID, Since: hq.Since, At: hq.At})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var versions []resources.Resource
	if count > 0 {
		hq.Limit = count + 1 // one more to learn whether there is a next page
		versions, err = a.res.History(r.Context(), req.account, hq)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if typ != "" && id != "" && total == 0 {
		a.writeError(w, r, resources.ErrNotFound)
		return
	}
	b := Bundle{ResourceType: "Bundle", Type: "history", Total: &total, Meta: &BundleMeta{LastUpdated: Instant(a.cfg.Now())}}
	b.ID, _ = a.res.NewID()
	self := req.base + strings.TrimPrefix(r.URL.Path, Prefix+req.account)
	b.Link = append(b.Link, BundleLink{Relation: "self", URL: self + queryString(q)})
	if len(versions) > count {
		versions = versions[:count]
		next := cloneValues(q)
		next.Set("_page", strconv.FormatInt(versions[len(versions)-1].Seq, 10))
		next.Set("_count", strconv.Itoa(count))
		b.Link = append(b.Link, BundleLink{Relation: "next", URL: self + queryString(next)})
	}
	for _, v := range versions {
		e := BundleEntry{FullURL: req.base + "/" + v.Type + "/" + v.ID}
		resp := &EntryResponse{Etag: etag(v.VersionID), LastModified: Instant(v.LastUpdated)}
		switch {
		case v.Deleted:
			e.Request = &EntryRequest{Method: "DELETE", URL: v.Type + "/" + v.ID}
			resp.Status = "204 No Content"
		case v.VersionID == 1 && !v.CreatedByPut:
			e.Request = &EntryRequest{Method: "POST", URL: v.Type}
			resp.Status = "201 Created"
			e.Resource = v.Body
		default: // an update, or a PUT that created the resource
			e.Request = &EntryRequest{Method: "PUT", URL: v.Type + "/" + v.ID}
			resp.Status = "200 OK"
			if v.VersionID == 1 {
				resp.Status = "201 Created"
			}
			e.Resource = v.Body
		}
		e.Response = resp
		b.Entry = append(b.Entry, e)
	}
	a.writeJSON(w, r, http.StatusOK, b)
}

func queryString(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func cloneValues(q url.Values) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// parseInstantParam parses a FHIR instant, dateTime or date (optionally
// without seconds); a value without a zone is taken as UTC. Partial dates
// mean the start of their period.
func parseInstantParam(v string) (time.Time, error) {
	layouts := []string{
		time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04Z07:00", "2006-01-02T15:04",
		"2006-01-02", "2006-01", "2006",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errBadInstant(v)
}

type errBadInstant string

func (e errBadInstant) Error() string {
	return "\"" + string(e) + "\" is not a FHIR instant such as 2026-01-31T12:00:00Z or a date such as 2026-01-31"
}
