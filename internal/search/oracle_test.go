package search_test

import (
	"context"
	"math/rand"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/store"
)

// searchers builds a token-path Searcher over e's server and its brute-force
// twin.
func searchers(t testing.TB, e *env) (*search.Indexer, *search.Searcher, *search.Searcher) {
	reg, err := searchparam.Load()
	if err != nil {
		t.Fatal(err)
	}
	srv := e.inst.Server
	x, err := search.NewIndexer(reg, srv.Model)
	if err != nil {
		t.Fatal(err)
	}
	s, err := search.New(search.Config{Store: srv.Store, Resources: srv.Resources, Indexer: x, Model: srv.Model})
	if err != nil {
		t.Fatal(err)
	}
	return x, s, search.BruteForce(s)
}

func refKeys(refs []store.Ref) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.Type+"/"+r.ID)
	}
	return out
}

// TestOracle compares the token path with brute-force evaluation over every
// decrypted resource, on random queries drawn from the data (the fixtures,
// plus Synthea bundles when present). The seed is logged; set
// KILN_SEARCH_SEED to replay.
func TestOracle(t *testing.T) {
	e := loadFixtures(t)
	var res []map[string]any
	for _, f := range fixtures {
		res = append(res, decodeFixture(t, f))
	}
	if files, _ := syntheaGlob(); len(files) > 0 {
		start := time.Now()
		for _, f := range files[:1] {
			rs := syntheaResources(t, f)
			for _, r := range rs {
				e.put(r)
			}
			res = append(res, rs...)
		}
		t.Logf("loaded %d resources in %v", len(res), time.Since(start))
	} else {
		t.Log("Synthea bundles absent: oracle runs over the fixtures only")
	}
	x, tokens, brute := searchers(t, e)
	seed := int64(rand.Uint32())
	if s := os.Getenv("KILN_SEARCH_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))
	ctx := context.Background()
	start := time.Now()
	queries := 200 // KILN_SEARCH_ORACLE_QUERIES raises it
	if testing.Short() {
		queries = 60
	}
	if n, err := strconv.Atoi(os.Getenv("KILN_SEARCH_ORACLE_QUERIES")); err == nil && n > 0 {
		queries = n
	}
	checked, nonEmpty := 0, 0
	for checked < queries {
		r := res[rnd.Intn(len(res))]
		typ := r["resourceType"].(string)
		for _, qs := range search.RandomQueries(x, r, rnd, 1) {
			q, err := url.ParseQuery(qs)
			if err != nil {
				continue
			}
			got, err1 := tokens.Resolve(ctx, "default", typ, q)
			want, err2 := brute.Resolve(ctx, "default", typ, q)
			if (err1 == nil) != (err2 == nil) {
				t.Errorf("%s?%s: token error %v, brute error %v", typ, qs, err1, err2)
				continue
			}
			checked++
			if err1 != nil {
				continue
			}
			if len(want) > 0 {
				nonEmpty++
			}
			if !eq(refKeys(got), refKeys(want)) {
				t.Errorf("%s?%s:\n token %v\n brute %v", typ, qs, refKeys(got), refKeys(want))
			}
		}
	}
	t.Logf("%d queries, %d with matches, in %v", checked, nonEmpty, time.Since(start))
	if nonEmpty < checked/4 {
		t.Errorf("only %d of %d random queries matched anything: the generator is too weak", nonEmpty, checked)
	}
}
