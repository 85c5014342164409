package search_test

import (
	"encoding/binary"
	"math"
	"os"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server/servertest"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// TestNoPlaintextIndex writes resources whose indexed values (strings,
// codes, identifiers, dates, numbers, quantities, URIs) are distinctive,
// checks that searches find them, then scans every file of the store
// (database, WAL, journal) for those values in plain text and for the
// binary forms the sort values would have if they were not sealed.
func TestNoPlaintextIndex(t *testing.T) {
	if os.Getenv(servertest.EngineEnv) == "postgres" {
		t.Skip("the store lives in PostgreSQL, not in the data directory; store/postgres scans its dump")
	}
	e := newEnv(t)
	e.put(`{"resourceType":"Patient","id":"a1","name":[{"family":"Quixotelyn","given":["Zebulonius"]}],
	  "birthDate":"1931-04-17","identifier":[{"system":"urn:leak:sys","value":"MRN-77341902"}],
	  "address":[{"city":"Vexhollow","postalCode":"Q9Z-4X1"}],"telecom":[{"system":"email","value":"zebulonius@quixotelyn.example"}]}`)
	e.put(`{"resourceType":"Observation","id":"a2","status":"final","subject":{"reference":"Patient/a1"},
	  "code":{"coding":[{"system":"urn:leak:codes","code":"LEAKCODE-5521","display":"Glorpatonic index"}]},
	  "effectiveDateTime":"1987-09-23T14:05:00Z","valueQuantity":{"value":98.7654,"unit":"flurbs","system":"urn:leak:units","code":"flurb-u"}}`)
	e.put(`{"resourceType":"ValueSet","id":"a3","status":"active","url":"http://leak-host.example/fhir/ValueSet/snorkel"}`)
	for q, n := range map[string]int{
		"Patient?name=quixo":                               1,
		"Patient?birthdate=1931-04-17":                     1,
		"Patient?identifier=urn:leak:sys|MRN-77341902":     1,
		"Observation?value-quantity=98.7654":               1,
		"Observation?date=1987-09-23":                      1,
		"Observation?code:text=glorp":                      1,
		"ValueSet?url:below=http://leak-host.example/fhir": 1,
	} {
		if got := e.ids(t, q); len(got) != n {
			t.Fatalf("%s: %v", q, got)
		}
	}
	e.search(t, "Observation?_sort=-value-quantity,date")
	dataDir := e.inst.DataDir
	e.inst.Close()

	needles := [][]byte{}
	for _, s := range []string{
		"Quixotelyn", "quixotelyn", "Zebulonius", "zebulonius", "1931-04-17", "19310417", "MRN-77341902", "urn:leak",
		"Vexhollow", "vexhollow", "Q9Z-4X1", "LEAKCODE-5521", "Glorpatonic", "glorpatonic", "1987-09-23", "98.7654",
		"flurbs", "flurb-u", "leak-host", "snorkel",
	} {
		needles = append(needles, []byte(s))
	}
	// Binary forms: the order-preserving float and time encodings used in
	// sort values, and the day number of the birth date.
	f := math.Float64bits(98.7654) | 1<<63
	needles = append(needles, binary.BigEndian.AppendUint64(nil, f))
	bd := time.Date(1931, 4, 17, 0, 0, 0, 0, time.UTC)
	needles = append(needles, binary.BigEndian.AppendUint64(nil, uint64(bd.Unix())+1<<63))
	files := servertest.Files(t, dataDir)
	// The scan must see the data: resource types and ids are stored plain.
	if found, err := storetest.FindStrings(files, [][]byte{[]byte("Observation")}); err != nil || len(found) == 0 {
		t.Fatalf("scan found no plain resource type (err %v): it does not see the store", err)
	}
	storetest.ScanForStrings(t, files, needles)
}
