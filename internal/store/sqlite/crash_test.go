package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
)

// The crash test re-executes the test binary as a child that commits in a
// loop and prints every acknowledged commit; the parent kills it with
// SIGKILL at a random moment, reopens the store and checks that every
// acknowledged commit is there, whole, and that SQLite reports no
// corruption. SIGKILL loses the process, not the OS page cache, so this
// proves crash consistency and that acknowledgement waits for the commit;
// power-loss durability rests on synchronous=FULL (docs/storage.md).
const (
	crashEnvPath  = "KILN_SQLITE_CRASH_CHILD"
	crashEnvStart = "KILN_SQLITE_CRASH_START"
	crashEnvMerge = "KILN_SQLITE_CRASH_MERGE_EVERY"
	crashWorkers  = 8
)

func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		t.Skip("crash-test child; runs only when re-executed by TestCrash")
	}
	start, err := strconv.ParseInt(os.Getenv(crashEnvStart), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	mergeEvery, _ := strconv.Atoi(os.Getenv(crashEnvMerge))
	crashChild(t, path, start, mergeEvery)
}

// crashChild commits forever. Each commit n writes Patient/a<n> and
// Observation/b<n> and bumps the worker's counter resource, then prints
// "ok <n> <worker> <counterVersion>".
func crashChild(t *testing.T, path string, start int64, mergeEvery int) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, sqlite.Options{MergeEvery: mergeEvery})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateAccount(ctx, store.Account{Name: "crash", CreatedAt: time.Unix(0, 0), Data: []byte("ring")})
	if err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	fmt.Fprintln(os.Stdout, "ready")
	var out sync.Mutex
	next := atomic.Int64{}
	next.Store(start)
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counter := store.Ref{Type: "Counter", ID: fmt.Sprint("w", w)}
			var cv int64
			if cur, err := s.Current(ctx, "crash", counter); err == nil {
				cv = cur.VersionID
			} else if !errors.Is(err, store.ErrNotFound) {
				panic(err)
			}
			for {
				n := next.Add(1)
				ws := []store.Write{
					crashWrite(store.Ref{Type: "Patient", ID: fmt.Sprint("a", n)}, 1, 0, n),
					crashWrite(store.Ref{Type: "Observation", ID: fmt.Sprint("b", n)}, 1, 0, n),
					crashWrite(counter, cv+1, cv, n),
				}
				if _, err := s.Commit(ctx, "crash", ws); err != nil {
					panic(err)
				}
				cv++
				out.Lock()
				// One write(2) per line, straight to the pipe: no buffering
				// can hold back or lose an acknowledged line.
				os.Stdout.WriteString(fmt.Sprintf("ok %d %d %d\n", n, w, cv))
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

func crashBody(n int64) []byte {
	return []byte(fmt.Sprintf("body-%d-%s", n, strings.Repeat("x", int(n%700))))
}

func crashWrite(ref store.Ref, vid, ifv, n int64) store.Write {
	return store.Write{
		Version:   store.Version{Type: ref.Type, ID: ref.ID, VersionID: vid, LastUpdated: time.UnixMicro(n).UTC(), Body: crashBody(n)},
		IfVersion: ifv,
		Tokens:    [][]byte{[]byte(fmt.Sprintf("tok-%013d", n)), []byte("tok-all-crash-rows")},
	}
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "kiln.db")

	acked := map[int64]bool{}   // commit n acknowledged
	counters := map[int]int64{} // worker -> highest acknowledged counter version
	const rounds = 6
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1")
		// Odd rounds merge tokens every few commits, so kills land in
		// merges too.
		mergeEvery := 0
		if round%2 == 1 {
			mergeEvery = 16
		}
		cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvStart+"="+strconv.Itoa(round*10_000_000),
			crashEnvMerge+"="+strconv.Itoa(mergeEvery))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []string
		firstAck := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(stdout)
			first := true
			for sc.Scan() {
				mu.Lock()
				got = append(got, sc.Text())
				mu.Unlock()
				if first && strings.HasPrefix(sc.Text(), "ok ") {
					first = false
					close(firstAck)
				}
			}
		}()
		// Round 0 may die while creating the schema; later rounds die while
		// committing, a random delay after the first acknowledgement.
		var delay time.Duration
		if round == 0 {
			delay = time.Duration(rng.IntN(30)) * time.Millisecond
		} else {
			select {
			case <-firstAck:
			case <-readDone:
				t.Fatalf("round %d: child exited before committing", round)
			case <-time.After(60 * time.Second):
				t.Fatalf("round %d: child did not commit within 60s", round)
			}
			delay = time.Duration(rng.IntN(300)) * time.Millisecond
		}
		time.Sleep(delay)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-readDone
		n := 0
		for _, l := range got {
			var c, w, cv int64
			if _, err := fmt.Sscanf(l, "ok %d %d %d", &c, &w, &cv); err != nil {
				continue // "ready", or a test-framework line
			}
			acked[c] = true
			counters[int(w)] = max(counters[int(w)], cv)
			n++
		}
		cmd.Wait()
		t.Logf("round %d: killed %v after start (round 0) or the first acknowledgement; %d commits acknowledged", round, delay, n)
		checkAfterCrash(t, path, acked, counters)
		if t.Failed() {
			return
		}
	}
}

func checkAfterCrash(t *testing.T, path string, acked map[int64]bool, counters map[int]int64) {
	t.Helper()
	ctx := context.Background()
	// SQLite's own verdict first, on a plain connection.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var verdict string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&verdict); err != nil || verdict != "ok" {
		t.Errorf("integrity_check = %q, %v", verdict, err)
	}
	db.Close()

	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	if _, err := s.GetAccount(ctx, "crash"); err != nil {
		if len(acked) == 0 && errors.Is(err, store.ErrNotFound) {
			return // killed before the account existed
		}
		t.Fatalf("account after crash: %v", err)
	}
	// Every acknowledged commit is readable, with its exact body.
	for n := range acked {
		for _, ref := range []store.Ref{{Type: "Patient", ID: fmt.Sprint("a", n)}, {Type: "Observation", ID: fmt.Sprint("b", n)}} {
			v, err := s.Current(ctx, "crash", ref)
			if err != nil || string(v.Body) != string(crashBody(n)) {
				t.Errorf("acknowledged %s/%s lost after crash: %v", ref.Type, ref.ID, err)
			}
		}
	}
	for w, cv := range counters {
		v, err := s.Current(ctx, "crash", store.Ref{Type: "Counter", ID: fmt.Sprint("w", w)})
		if err != nil || v.VersionID < cv {
			t.Errorf("counter w%d is v%d (%v), acknowledged v%d", w, v.VersionID, err, cv)
		}
	}
	// Nothing half-written: every commit present has all three parts, and
	// its token rows.
	var pats, obs []store.Version
	for _, typ := range []string{"Patient", "Observation"} {
		after := store.Ref{}
		for {
			vs, err := s.Scan(ctx, "crash", typ, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if typ == "Patient" {
				pats = append(pats, vs...)
			} else {
				obs = append(obs, vs...)
			}
			if len(vs) < 1000 {
				break
			}
			after = store.Ref{Type: typ, ID: vs[len(vs)-1].ID}
		}
	}
	if len(pats) != len(obs) {
		t.Errorf("half-written commits: %d Patients but %d Observations", len(pats), len(obs))
	}
	for _, p := range pats {
		n, _ := strconv.ParseInt(p.ID[1:], 10, 64)
		if _, err := s.Current(ctx, "crash", store.Ref{Type: "Observation", ID: fmt.Sprint("b", n)}); err != nil {
			t.Errorf("commit %d half-written: Patient without Observation (%v)", n, err)
		}
		refs, err := s.Lookup(ctx, "crash", store.Match{Clauses: [][][]byte{{[]byte(fmt.Sprintf("tok-%013d", n))}}})
		// The counter matches too while commit n wrote its current version.
		if err != nil || !slices.Contains(refs, store.Ref{Type: "Patient", ID: p.ID}) ||
			!slices.Contains(refs, store.Ref{Type: "Observation", ID: fmt.Sprint("b", n)}) {
			t.Errorf("commit %d: tokens match %v (%v), want both resources", n, refs, err)
		}
	}
	counted := 0
	for w := range crashWorkers {
		ref := store.Ref{Type: "Counter", ID: fmt.Sprint("w", w)}
		v, err := s.Current(ctx, "crash", ref)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		hist, _ := s.History(ctx, "crash", store.HistoryQuery{Type: ref.Type, ID: ref.ID})
		if err != nil || len(hist) != int(v.VersionID) {
			t.Errorf("counter w%d: v%d with %d versions in history (%v)", w, v.VersionID, len(hist), err)
		}
		counted += len(hist)
	}
	if counted != len(pats) {
		t.Errorf("half-written commits: %d counter versions but %d Patients", counted, len(pats))
	}
	all, err := s.Lookup(ctx, "crash", store.Match{Clauses: [][][]byte{{[]byte("tok-all-crash-rows")}}})
	if err != nil || len(all) != len(pats)+len(obs)+countersPresent(ctx, s) {
		t.Errorf("shared token matches %d refs, want %d (%v)", len(all), len(pats)+len(obs)+countersPresent(ctx, s), err)
	}
}

func countersPresent(ctx context.Context, s *sqlite.Store) int {
	n := 0
	for w := range crashWorkers {
		if _, err := s.Current(ctx, "crash", store.Ref{Type: "Counter", ID: fmt.Sprint("w", w)}); err == nil {
			n++
		}
	}
	return n
}
