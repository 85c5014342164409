package fhir_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
)

func TestResourceTypes(t *testing.T) {
	m := newModel(t)
	rts := m.ResourceTypes()
	// R4 (4.0.1) defines 145 concrete resource types plus Resource,
	// DomainResource (abstract) and the concrete Parameters/Bundle/Binary
	// that do not derive from DomainResource.
	if len(rts) != 146 {
		t.Fatalf("got %d resource types, want 146", len(rts))
	}
	if !slices.IsSorted(rts) {
		t.Fatal("ResourceTypes is not sorted")
	}
	for _, name := range []string{"Patient", "Observation", "Bundle", "Parameters", "Binary", "AuditEvent", "SearchParameter"} {
		if !m.IsResourceType(name) || !slices.Contains(rts, name) {
			t.Errorf("%s should be a resource type", name)
		}
	}
	for _, name := range []string{"Resource", "DomainResource", "HumanName", "string", "patient", "", "MedicinalProductX"} {
		if m.IsResourceType(name) {
			t.Errorf("%s should not be a resource type", name)
		}
	}
	rts[0] = "mutated"
	if m.ResourceTypes()[0] == "mutated" {
		t.Fatal("ResourceTypes shares its slice")
	}
	if m.FHIRVersion() != "4.0.1" {
		t.Fatalf("FHIRVersion = %q", m.FHIRVersion())
	}
}

func TestElementTypes(t *testing.T) {
	m := newModel(t)
	cases := []struct {
		typ, el string
		want    []string
	}{
		{"Observation", "value", []string{"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"}},
		{"Patient", "deceased", []string{"boolean", "dateTime"}},
		{"Patient", "name", []string{"HumanName"}},
		{"Patient", "id", []string{"id"}},
		{"Patient", "contained", []string{"Resource"}},
		{"Patient", "contact", []string{"BackboneElement"}},
		{"Patient.contact", "name", []string{"HumanName"}},
		{"Patient.contact", "organization", []string{"Reference"}},
		{"HumanName", "given", []string{"string"}},
		{"HumanName", "id", []string{"string"}},
		{"Extension", "url", []string{"uri"}},
		{"Observation.component", "value", []string{"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"}},
		{"Questionnaire.item.item", "linkId", []string{"string"}},
		{"Questionnaire.item", "item", []string{"BackboneElement"}},
		{"Bundle.entry", "resource", []string{"Resource"}},
		{"date", "extension", []string{"Extension"}},
		{"string", "id", []string{"string"}},
		{"Patient", "valueQuantity", nil},
		{"Patient", "nope", nil},
		{"Nope", "id", nil},
		{"Patient.nope", "id", nil},
	}
	for _, c := range cases {
		t.Run(c.typ+"."+c.el, func(t *testing.T) {
			if got := m.ElementTypes(c.typ, c.el); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("ElementTypes(%q, %q) = %v, want %v", c.typ, c.el, got, c.want)
			}
		})
	}
}

func TestChildTypePath(t *testing.T) {
	m := newModel(t)
	cases := []struct{ typ, el, want string }{
		{"Patient", "contact", "Patient.contact"},
		{"Patient", "name", "HumanName"},
		{"Patient", "birthDate", "date"},
		{"Patient.contact", "name", "HumanName"},
		{"Questionnaire", "item", "Questionnaire.item"},
		{"Questionnaire.item", "item", "Questionnaire.item"},
		{"Bundle", "entry", "Bundle.entry"},
		{"Bundle.entry", "resource", "Resource"},
		{"Observation", "value", ""},
		{"Patient", "nope", ""},
	}
	for _, c := range cases {
		if got := m.ChildTypePath(c.typ, c.el); got != c.want {
			t.Errorf("ChildTypePath(%q, %q) = %q, want %q", c.typ, c.el, got, c.want)
		}
	}
	// Navigation composes: Questionnaire.item.item.item resolves.
	if got := m.ElementTypes(m.ChildTypePath(m.ChildTypePath("Questionnaire", "item"), "item"), "text"); fmt.Sprint(got) != "[string]" {
		t.Fatalf("nested navigation: %v", got)
	}
}

func TestElementInfo(t *testing.T) {
	m := newModel(t)
	info, ok := m.Element("Observation", "value")
	if !ok || !info.Choice || info.Path != "Observation.value[x]" || info.Max != 1 || info.Min != 0 || !info.Summary {
		t.Fatalf("Observation.value: %+v", info)
	}
	info, ok = m.Element("Patient", "name")
	if !ok || info.Choice || info.Max != -1 || info.Path != "Patient.name" {
		t.Fatalf("Patient.name: %+v", info)
	}
	info, ok = m.Element("Observation", "status")
	if !ok || info.Min != 1 || !info.Modifier {
		t.Fatalf("Observation.status: %+v", info)
	}
	if m.TypeKind("string") != fhir.KindPrimitive || m.TypeKind("HumanName") != fhir.KindComplex || m.TypeKind("Patient") != fhir.KindResource || m.TypeKind("x") != fhir.KindUnknown {
		t.Fatal("TypeKind")
	}
}

func TestSummary(t *testing.T) {
	m := newModel(t)
	for path, want := range map[string]bool{
		"Patient.name": true, "Patient.id": true, "Patient.meta": true, "Patient.photo": false, "Patient.contact": false,
		"Patient.deceased": true, "Patient.deceased[x]": true, "Patient.link.other": true, "Observation.status": true,
		"Observation.note": false, "Nope.x": false, "Patient": false,
	} {
		if got := m.IsSummary(path); got != want {
			t.Errorf("IsSummary(%q) = %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]bool{
		"Observation.status": true, "Observation.code": true, "Observation.subject": false,
		"Patient.communication.language": true, "Patient.link.other": true, "Patient.name": false, "Bundle.type": true,
	} {
		if got := m.IsMandatory(path); got != want {
			t.Errorf("IsMandatory(%q) = %v, want %v", path, got, want)
		}
	}
	got := m.SummaryElements("Patient")
	want := []string{"id", "meta", "implicitRules", "identifier", "active", "name", "telecom", "gender", "birthDate", "deceased", "address", "managingOrganization", "link"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("SummaryElements(Patient) = %v, want %v", got, want)
	}
	if got := m.SummaryElements("Observation"); !slices.Contains(got, "status") || !slices.Contains(got, "code") || slices.Contains(got, "note") {
		t.Fatalf("SummaryElements(Observation) = %v", got)
	}
}

// TestPrimitiveAgainstRegex cross-checks the hand-written primitive checks
// with the regexes from the StructureDefinitions on a corpus of values.
func TestPrimitiveAgainstRegex(t *testing.T) {
	corpus := []string{"", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "x\x01", "1970", "1970-01", "1970-01-01", "1970-1-1", "0000", "0001",
		"1970-13-01", "1970-02-31", "2000-02-29", "1900-02-29", "1970-01-01T10:00:00Z", "1970-01-01T10:00:00", "1970-01-01T24:00:00Z",
		"1970-01-01T10:00:00.123+05:30", "1970-01-01T10:00:00+14:00", "1970-01-01T10:00:00+14:30", "1970-01-01T10:00Z", "10:00:00", "10:00",
		"23:59:60", "23:59:60.5", "24:00:00", "urn:oid:1.2.3", "urn:oid:1", "urn:oid:3.1", "urn:oid:1.02", "urn:uuid:0b3a3b0a-1c1e-4a7c-9d4e-2f9f5c6b7a8d",
		"urn:uuid:0B3A3B0A-1c1e-4a7c-9d4e-2f9f5c6b7a8d", "aGVsbG8=", "aGVsbG8", "aGVs bG8=", "a===", "ab==", "AAAA", "a-b.c", "a_b",
		"http://x/y", "x y", "A\u00e9", "\u00a0"}
	types := []string{"string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "date", "dateTime", "instant", "time", "base64Binary", "markdown"}
	m := newModel(t)
	for _, typ := range types {
		re := m.PrimitiveRegex(typ)
		if re == nil {
			t.Fatalf("no regex for %s", typ)
		}
		for _, s := range corpus {
			ours := fhir.CheckPrimitive(typ, s) == ""
			theirs := s != "" && re.MatchString(s)
			if ours == theirs {
				continue
			}
			// Known, deliberate differences: the regexes do not know month
			// lengths or where base64 padding may go, and the string
			// regexes allow control characters that FHIR forbids.
			switch {
			case !ours && theirs && (typ == "date" || typ == "dateTime" || typ == "instant") && fhir.CheckPrimitive(typ, s) == "day does not exist in that month":
			case !ours && theirs && typ == "base64Binary":
			case !ours && theirs && (typ == "string" || typ == "markdown" || typ == "code") && s == "x\x01":
			default:
				t.Errorf("%s %q: CheckPrimitive valid=%v, regex valid=%v (%s)", typ, s, ours, theirs, fhir.CheckPrimitive(typ, s))
			}
		}
	}
}
