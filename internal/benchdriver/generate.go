package benchdriver

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Generator makes synthetic, valid R4 resources from a seeded source.
// Not safe for concurrent use: give each goroutine its own.
type Generator struct {
	rng *rand.Rand
	n   int
}

// NewGenerator returns a Generator whose output depends only on seed.
func NewGenerator(seed uint64) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1))}
}

var (
	families = []string{"Smith", "Jones", "García", "Nguyen", "Müller", "Okafor", "Kowalski", "Tanaka", "Haddad", "Silva", "Johansson", "O'Brien"}
	givens   = []string{"Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivan", "Jun", "Kofi", "Lena"}
	// LOINC vital signs: code, display, unit, low, high.
	vitals = []struct {
		code, display, unit string
		lo, hi              float64
	}{
		{"8867-4", "Heart rate", "/min", 50, 110},
		{"8480-6", "Systolic blood pressure", "mm[Hg]", 95, 165},
		{"8310-5", "Body temperature", "Cel", 35.8, 38.9},
		{"29463-7", "Body weight", "kg", 45, 120},
		{"9279-1", "Respiratory rate", "/min", 10, 24},
	}
	// SNOMED CT conditions.
	conditions = []struct{ code, display string }{
		{"44054006", "Diabetes mellitus type 2"}, {"38341003", "Hypertensive disorder"},
		{"195662009", "Acute viral pharyngitis"}, {"10509002", "Acute bronchitis"},
		{"162864005", "Body mass index 30+ - obesity"},
	}
)

func (g *Generator) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *Generator) date(fromYear, toYear int) time.Time {
	from := time.Date(fromYear, 1, 1, 0, 0, 0, 0, time.UTC)
	span := time.Date(toYear, 1, 1, 0, 0, 0, 0, time.UTC).Sub(from)
	return from.Add(time.Duration(g.rng.Int64N(int64(span/time.Second))) * time.Second)
}

// Patient returns a Patient (no id) with a unique identifier.
func (g *Generator) Patient() map[string]any {
	g.n++
	gender := "female"
	if g.rng.IntN(2) == 0 {
		gender = "male"
	}
	return map[string]any{
		"resourceType": "Patient",
		"identifier": []any{map[string]any{
			"system": "https://kiln.dev/bench/mrn",
			"value":  fmt.Sprintf("MRN-%d-%d", g.rng.Uint32(), g.n),
		}},
		"active":    true,
		"name":      []any{map[string]any{"family": g.pick(families), "given": []any{g.pick(givens)}}},
		"gender":    gender,
		"birthDate": g.date(1930, 2020).Format("2006-01-02"),
		"address":   []any{map[string]any{"city": g.pick([]string{"Springfield", "Riverton", "Lakeside", "Hill Valley"}), "country": "US"}},
	}
}

// Encounter returns an Encounter of subject.
func (g *Generator) Encounter(subject string, start time.Time) map[string]any {
	return map[string]any{
		"resourceType": "Encounter",
		"status":       "finished",
		"class":        map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
		"subject":      map[string]any{"reference": subject},
		"period":       map[string]any{"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339)},
	}
}

// Observation returns a vital-sign Observation of subject in encounter.
func (g *Generator) Observation(subject, encounter string, at time.Time) map[string]any {
	v := vitals[g.rng.IntN(len(vitals))]
	value := v.lo + g.rng.Float64()*(v.hi-v.lo)
	return map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": v.code, "display": v.display}}, "text": v.display},
		"subject":           map[string]any{"reference": subject},
		"encounter":         map[string]any{"reference": encounter},
		"effectiveDateTime": at.Format(time.RFC3339),
		"valueQuantity":     map[string]any{"value": json.Number(fmt.Sprintf("%.1f", value)), "unit": v.unit, "system": "http://unitsofmeasure.org", "code": v.unit},
	}
}

// Condition returns a Condition of subject diagnosed in encounter.
func (g *Generator) Condition(subject, encounter string, at time.Time) map[string]any {
	c := conditions[g.rng.IntN(len(conditions))]
	return map[string]any{
		"resourceType":   "Condition",
		"clinicalStatus": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}}},
		"code":           map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": c.code, "display": c.display}}, "text": c.display},
		"subject":        map[string]any{"reference": subject},
		"encounter":      map[string]any{"reference": encounter},
		"onsetDateTime":  at.Format(time.RFC3339),
	}
}

// uuid returns a random (seeded) UUID v4 string.
func (g *Generator) uuid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	a = a&^(0xf<<12) | 0x4<<12
	b = b&^(0x3<<62) | 0x2<<62
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// PatientBundle returns a transaction Bundle of one Patient with
// encounters Encounters, each with obsPer Observations and (every other
// one) a Condition, all referring to the Patient and their Encounter by
// urn:uuid fullUrls, and the number of resources in it.
func (g *Generator) PatientBundle(encounters, obsPer int) ([]byte, int, error) {
	var entries []any
	add := func(res map[string]any) string {
		full := "urn:uuid:" + g.uuid()
		entries = append(entries, map[string]any{
			"fullUrl": full, "resource": res,
			"request": map[string]any{"method": "POST", "url": res["resourceType"]},
		})
		return full
	}
	pat := add(g.Patient())
	for e := 0; e < encounters; e++ {
		at := g.date(2015, 2026)
		enc := add(g.Encounter(pat, at))
		for o := 0; o < obsPer; o++ {
			add(g.Observation(pat, enc, at.Add(time.Duration(o)*time.Minute)))
		}
		if e%2 == 0 {
			add(g.Condition(pat, enc, at))
		}
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	return b, len(entries), err
}
