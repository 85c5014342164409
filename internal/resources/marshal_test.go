package resources

import "testing"

func TestMarshalOrder(t *testing.T) {
	b, _ := Marshal(map[string]any{"b": 1, "resourceType": "Patient", "a": "<div>", "meta": map[string]any{"versionId": "1"}, "id": "x"})
	if string(b) != `{"resourceType":"Patient","id":"x","meta":{"versionId":"1"},"a":"<div>","b":1}` {
		t.Fatal(string(b))
	}
	b, _ = Marshal(map[string]any{"resourceType": "Patient"})
	if string(b) != `{"resourceType":"Patient"}` {
		t.Fatal(string(b))
	}
}
