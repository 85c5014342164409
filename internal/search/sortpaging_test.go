package search_test

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

// TestDateSortPaging checks _sort=-date (over three pages) and _sort=date
// on 400 resources against orders computed independently.
func TestDateSortPaging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	srv := e.inst.Server
	keys, err := srv.Resources.Keys(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(7))
	type obs struct {
		id  string
		day time.Time
	}
	var all []obs
	var writes []store.Write
	now := time.Now().UTC()
	for i := 0; i < 400; i++ {
		d := now.AddDate(0, 0, -rnd.Intn(20000)+30).Truncate(24 * time.Hour)
		id := fmt.Sprintf("w%03d", i)
		all = append(all, obs{id, d})
		res := map[string]any{"resourceType": "Observation", "id": id, "status": "final",
			"code": map[string]any{"text": "w"}, "effectiveDateTime": d.Format("2006-01-02")}
		p, err := srv.Resources.PrepareCreate(ctx, keys, "Observation", id, res)
		if err != nil {
			t.Fatal(err)
		}
		writes = append(writes, p.Write)
	}
	if _, err := srv.Store.Commit(ctx, "default", writes); err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].day.Equal(all[j].day) {
			return all[i].day.After(all[j].day)
		}
		return all[i].id < all[j].id
	})
	var want []string
	for _, o := range all {
		want = append(want, "Observation/"+o.id)
	}
	b := e.search(t, "Observation?_sort=-date&_count=25")
	var got []string
	for page := 0; page < 3; page++ {
		got = append(got, matchIDs(b)...)
		b = e.inst.Do(t, "GET", links(b)["next"], nil).Want(t, 200).JSON(t)
	}
	if strings.Join(got, " ") != strings.Join(want[:75], " ") {
		t.Fatalf("order differs:\n got  %v\n want %v", got, want[:75])
	}
	// Ascending (full sort) with a criterion, against the same data.
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].day.Equal(all[j].day) {
			return all[i].day.Before(all[j].day)
		}
		return all[i].id < all[j].id
	})
	var wantAsc []string
	for _, o := range all[:5] {
		wantAsc = append(wantAsc, "Observation/"+o.id)
	}
	if got := matchIDs(e.search(t, "Observation?_sort=date&_count=5&date=ge1900")); strings.Join(got, " ") != strings.Join(wantAsc, " ") {
		t.Fatalf("ascending: got %v want %v", got, wantAsc)
	}
}
