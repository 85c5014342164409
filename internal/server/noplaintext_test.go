package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// Distinctive strings written into resources. None may be found in any file
// of the data directory. Account names and ids are allowed in plaintext
// (DESIGN.md §3), so no needle is used as either.
var needles = []string{
	"Zarathustra-Vellacott", "Ottoline", "Wisteria Hollow", "Thistlewick", "QX9 7ZZ",
	"MRN-83726154", "+44 7700 900461", "ottoline.vellacott@example.org", "1987-06-05",
	"173.456789", "98765.4321", "xylophonic tinnitus", "Candlemas", "Quillfeather",
	"Brackenbury Infirmary", "Snodgrass-Pemberton",
}

func sensitiveResources() []struct{ typ, body string } {
	return []struct{ typ, body string }{
		{"Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3","value":"MRN-83726154"}],
			"name":[{"family":"Zarathustra-Vellacott","given":["Ottoline"]}],"birthDate":"1987-06-05",
			"telecom":[{"system":"phone","value":"+44 7700 900461"},{"system":"email","value":"ottoline.vellacott@example.org"}],
			"address":[{"line":["12 Wisteria Hollow"],"city":"Thistlewick","postalCode":"QX9 7ZZ"}]}`},
		{"Observation", `{"resourceType":"Observation","status":"final","code":{"text":"height"},
			"valueQuantity":{"value":173.456789,"unit":"cm"},"note":[{"text":"Complains of xylophonic tinnitus since Candlemas"}]}`},
		{"Observation", `{"resourceType":"Observation","status":"final","code":{"text":"count"},"valueQuantity":{"value":98765.4321}}`},
		{"Organization", `{"resourceType":"Organization","name":"Brackenbury Infirmary"}`},
		{"Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Quillfeather"}]}`},
	}
}

// TestNoPlaintextOnDisk writes resources full of distinctive strings (with
// updates, a delete and a second account), then scans every file under the
// data directory, while running and after Close, for each string. Two
// controls show the scan can fail: a needle in a plain file, and an account
// name (which is stored in plaintext by design) found in the database files.
func TestNoPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	// SQLite whatever KILN_TEST_ENGINE says: this test scans the data dir
	// (the PostgreSQL dump scan lives in store/postgres).
	storeURL := "sqlite:" + filepath.Join(dir, "kiln.db")
	in := servertest.New(t, server.Options{DataDir: dir, Store: storeURL, VaultAddr: "127.0.0.1:0"})
	const canary = "canary-acct-zq"
	in.Do(t, "PUT", "/management/accounts/"+canary, nil).Want(t, 201)

	type ref struct{ account, typ, id string }
	var refs []ref
	for _, acct := range []string{"default", canary} {
		for _, r := range sensitiveResources() {
			resp := in.Do(t, "POST", "/fhir/"+acct+"/"+r.typ, r.body).Want(t, 201)
			refs = append(refs, ref{acct, r.typ, resp.JSON(t)["id"].(string)})
		}
	}
	// A later version, and a deleted resource whose earlier version stays.
	p := refs[0]
	in.Do(t, "PUT", "/fhir/default/Patient/"+p.id, `{"resourceType":"Patient","id":"`+p.id+`","name":[{"family":"Snodgrass-Pemberton"}],"birthDate":"1987-06-05"}`).Want(t, 200)
	in.Do(t, "DELETE", "/fhir/"+canary+"/Organization/"+refs[len(sensitiveResources())+3].id, nil).Want(t, 200, 204)

	var nb [][]byte
	for _, n := range needles {
		nb = append(nb, []byte(n))
	}
	scan := func(when string) []string {
		files := servertest.Files(t, dir)
		found, err := storetest.FindStrings(files, nb)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Errorf("%s: plaintext %s", when, f)
		}
		return files
	}
	scan("while running")
	in.Close()
	files := scan("after Close")

	// The scan covered the store, the key file(s) and the vault.
	var names []string
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		names = append(names, rel)
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"kiln.db", "keys", "vault" + string(filepath.Separator)} {
		if !strings.Contains(all, want) {
			t.Errorf("no file matching %q was scanned (files: %s)", want, all)
		}
	}
	t.Logf("scanned %d files: %s", len(files), all)

	// Control 1: the account name, plaintext by design, is found in the database files.
	found, err := storetest.FindStrings(files, [][]byte{[]byte(canary)})
	if err != nil {
		t.Fatal(err)
	}
	inDB := false
	for _, f := range found {
		inDB = inDB || strings.Contains(filepath.Base(f.Source), "kiln.db")
	}
	if !inDB {
		t.Errorf("control: account name %q not found in the database files; the scan does not read what the store wrote (found %v)", canary, found)
	}
	// Control 2: a needle written to a plain file in the data dir is caught.
	ctl := filepath.Join(dir, "control.txt")
	if err := os.WriteFile(ctl, []byte("xx "+needles[3]+" xx"), 0o600); err != nil {
		t.Fatal(err)
	}
	found, err = storetest.FindStrings(servertest.Files(t, dir), nb)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Source != ctl {
		t.Errorf("control: the scan should find exactly the needle in %s, found %v", ctl, found)
	}
	os.Remove(ctl)

	// The data is really there: a restart on the same directory reads it all back.
	again := servertest.New(t, server.Options{DataDir: dir, Store: storeURL, VaultAddr: "127.0.0.1:0"})
	for i, r := range refs {
		resp := again.Do(t, "GET", fmt.Sprintf("/fhir/%s/%s/%s/_history/1", r.account, r.typ, r.id), nil).Want(t, 200)
		if !strings.Contains(string(resp.Body), firstNeedle(i%len(sensitiveResources()))) {
			t.Errorf("restart: %s/%s/%s lost its content: %s", r.account, r.typ, r.id, resp)
		}
	}
	again.Do(t, "GET", "/fhir/default/Patient/"+p.id+"/_history/2", nil).Want(t, 200)
	again.Do(t, "GET", "/fhir/"+canary+"/Organization/"+refs[len(sensitiveResources())+3].id, nil).Want(t, 410)
}

func firstNeedle(i int) string {
	return []string{"Zarathustra-Vellacott", "xylophonic tinnitus", "98765.4321", "Brackenbury Infirmary", "Quillfeather"}[i]
}
