package multinode_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
	"github.com/kilnhealth/kiln/internal/store/postgres"
	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// privateCluster starts a PostgreSQL cluster of its own in a temp dir with
// .ci/postgres.sh (so its data directory holds nothing but this test's
// database) and returns its URL and directory. The cluster is stopped and
// removed at cleanup; stop stops it earlier, keeping its files for a scan.
func privateCluster(t *testing.T) (dbURL, dir string, stop func()) {
	t.Helper()
	pgtest.URL(t) // skip unless a PostgreSQL installation is in use
	script, err := filepath.Abs(filepath.Join("..", "..", ".ci", "postgres.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err = os.MkdirTemp("", "kiln-pg-noplain-")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KILN_PG_DIR="+dir, "KILN_PG_PORT="+strings.Split(freeAddr(t), ":")[1], "KILN_PG_KEEP=1")
	sh := func(arg string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", script, arg)
		cmd.Env = env
		return cmd.CombinedOutput()
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		if out, err := sh("stop"); err != nil {
			t.Errorf("stop private cluster: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		stop()
		os.RemoveAll(dir)
	})
	out, err := sh("start")
	if err != nil {
		t.Fatalf("start private cluster: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export KILN_TEST_POSTGRES='"); ok {
			dbURL = strings.TrimSuffix(v, "'")
		}
	}
	if dbURL == "" {
		t.Fatalf("postgres.sh printed no URL:\n%s", out)
	}
	return dbURL, dir, stop
}

// TestNoPlaintextOnPostgres writes resources full of distinctive strings
// through the real HTTP stack of a server on PostgreSQL, then scans the
// pg_dump output (bytea decoded) and every file of the cluster's directory
// (tables, WAL, logs) and of Kiln's data directory. None may appear. The
// account name, which is allowed metadata, is the control: it must be found
// in both, or the scan proves nothing.
func TestNoPlaintextOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	dbURL, pgDir, stopCluster := privateCluster(t)
	inst := servertest.New(t, server.Options{Store: dbURL})

	const control = "npcontrolacct"
	inst.Do(t, "PUT", "/management/accounts/"+control, map[string]any{}).Want(t, 201)
	secrets := []string{
		"Zyxquorbinian", "Quillfeatherby", "Vexmoorvale", "Quillfeather Lane 8675",
		"ZX-4471-QQ-9183", "1937-04-19", "987.654321", "+1-555-867-5309",
		"wobblefrost@example.org", "Glimmerbrook Clinic", "Thornwhistle syndrome",
		"2011-07-23T14:35:09", "Snarkleberry",
	}
	b := "/fhir/" + control
	pat := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "ZX-4471-QQ-9183"}},
		"name":         []any{map[string]any{"family": "Zyxquorbinian", "given": []any{"Quillfeatherby"}}},
		"telecom":      []any{map[string]any{"system": "phone", "value": "+1-555-867-5309"}, map[string]any{"system": "email", "value": "wobblefrost@example.org"}},
		"birthDate":    "1937-04-19",
		"address":      []any{map[string]any{"line": []any{"Quillfeather Lane 8675"}, "city": "Vexmoorvale", "postalCode": "Q9X 4Z7"}},
	}
	r := inst.Do(t, "POST", b+"/Patient", pat).Want(t, 201)
	pid, _ := r.JSON(t)["id"].(string)
	pat["id"] = pid
	pat["name"] = []any{map[string]any{"family": "Snarkleberry", "given": []any{"Quillfeatherby"}}}
	inst.Do(t, "PUT", b+"/Patient/"+pid, pat).Want(t, 200) // a second version
	obs := map[string]any{
		"resourceType":      "Observation",
		"status":            "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "29463-7"}}, "text": "Thornwhistle syndrome"},
		"subject":           map[string]any{"reference": "Patient/" + pid},
		"effectiveDateTime": "2011-07-23T14:35:09Z",
		"valueQuantity":     map[string]any{"value": 987.654321, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
		"performer":         []any{map[string]any{"display": "Glimmerbrook Clinic"}},
	}
	inst.Do(t, "POST", b+"/Observation", obs).Want(t, 201)
	// Through a transaction Bundle too, when the server takes them.
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"fullUrl": "urn:uuid:0c8e2a51-8a43-4b38-9f3e-3b7f0d7d6a10", "resource": obs,
		"request": map[string]any{"method": "POST", "url": "Observation"},
	}}}
	if r := inst.Do(t, "POST", b, tx); r.Status != 200 {
		t.Logf("transaction not accepted (%d); single creates only", r.Status)
	}
	// Reads and searches leave nothing behind either.
	inst.Do(t, "GET", b+"/Patient/"+pid, nil).Want(t, 200)
	inst.Do(t, "GET", b+"/Patient?family=Snarkle", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dump, err := postgres.DumpDatabase(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	inst.Close()
	stopCluster() // flushes everything to the files scanned below

	var needles [][]byte
	for _, s := range secrets {
		needles = append(needles, []byte(s), []byte(strings.ToLower(s)))
	}
	if !bytes.Contains(dump, []byte(control)) {
		t.Fatal("control: the account name is not in the dump, so the scan proves nothing")
	}
	storetest.ScanReaderForStrings(t, "pg_dump", bytes.NewReader(dump), needles)

	files := append(servertest.Files(t, pgDir), servertest.Files(t, inst.DataDir)...)
	found, err := storetest.FindStrings(files, [][]byte{[]byte(control)})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Fatalf("control: the account name is in none of the %d files, so the scan proves nothing", len(files))
	}
	storetest.ScanForStrings(t, files, needles)
	t.Logf("scanned a %d-byte dump and %d files (%d control hits) for %d needles", len(dump), len(files), len(found), len(needles))
}
