package fhir

import "testing"

func TestEqual(t *testing.T) {
	dec := func(s string) any {
		m, err := Decode([]byte(`{"v":` + s + `}`))
		if err != nil {
			t.Fatal(err)
		}
		return m["v"]
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{`1.0`, `1.00`, true}, {`1`, `2`, false}, {`"a"`, `"a"`, true}, {`"1"`, `1`, false},
		{`null`, `null`, true}, {`null`, `false`, false}, {`true`, `true`, true},
		{`{"a":[1,{"b":2.50}]}`, `{"a":[1.0,{"b":2.5}]}`, true}, {`{"a":1}`, `{"a":1,"b":2}`, false},
		{`[1,2]`, `[2,1]`, false}, {`[]`, `{}`, false},
	} {
		if got := Equal(dec(c.a), dec(c.b)); got != c.want {
			t.Errorf("Equal(%s, %s) = %v", c.a, c.b, got)
		}
	}
}
