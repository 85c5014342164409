package storetest_test

import (
	"fmt"
	"strings"

	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// Scanning a database dump for strings that must never be stored in
// plaintext.
func ExampleFindStringsReader() {
	dump := strings.NewReader("COPY versions ... \\x0a8f31 ... Smithson ...")
	found, err := storetest.FindStringsReader("dump.sql", dump, [][]byte{[]byte("Smithson"), []byte("1972-03-04")})
	fmt.Println(found, err)
	// Output:
	// ["Smithson" at dump.sql+31] <nil>
}
