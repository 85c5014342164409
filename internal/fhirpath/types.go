package fhirpath

import (
	"encoding/json"
	"strings"
)

// Model supplies element types from a FHIR structure model. The R4 model in
// internal/fhir implements it.
//
// ElementTypes returns the type codes allowed for element (a plain element
// name, without "[x]") of typeName, which is either a type name such as
// "Observation" or "HumanName", or the path of a backbone element such as
// "Patient.contact" or "Questionnaire.item.item" (the engine builds such paths
// by appending element names, so an implementation must follow content
// references itself). More than one code means a choice element; a backbone
// element answers "BackboneElement" (or "Element"), and the engine then
// navigates its children with typeName set to the path. Unknown elements
// return nil, and the engine falls back to inferring from JSON.
type Model interface {
	ElementTypes(typeName, element string) []string
}

// Env carries what an evaluation may consult. The zero Env is valid: it
// evaluates without a model.
type Env struct {
	// Model supplies element types; nil means infer types from JSON.
	Model Model
	// MaxSteps bounds the work of one evaluation (items visited by member
	// navigation and by iterating functions such as where). Zero means
	// DefaultMaxSteps. Exceeding it gives an *EvalError.
	MaxSteps int
}

// DefaultMaxSteps is the work budget of an evaluation when Env.MaxSteps is
// zero: far above what any search parameter needs on a real resource, far
// below what would stall a server.
const DefaultMaxSteps = 1 << 20

func (e Env) limit() int {
	if e.MaxSteps > 0 {
		return e.MaxSteps
	}
	return DefaultMaxSteps
}

// Node is one item of a result collection.
type Node struct {
	// Value is the item: map[string]any for complex types and resources,
	// string, bool or json.Number for primitives. For resolve() results it is
	// a stub map holding only "resourceType" and, when known, "id".
	Value any
	// Type is the FHIR type code when known ("HumanName", "Period",
	// "dateTime", "Patient", "BackboneElement"), a System type for values the
	// expression computed ("System.Boolean", "System.String"), or "" when the
	// type could not be determined.
	Type string
	// path is the model path for navigating into a backbone element
	// ("Patient.contact"); for other complex types it equals Type.
	path string
}

// systemTypes are the FHIRPath System type names that an unqualified type
// specifier resolves to (no FHIR type has these exact names).
var systemTypes = map[string]bool{
	"Boolean": true, "String": true, "Integer": true, "Long": true, "Decimal": true,
	"Date": true, "DateTime": true, "Time": true,
}

// fhirTypeBySuffix maps the capitalised suffix of a choice-type JSON key
// (valueQuantity, valueDateTime) to the R4 type code.
var fhirTypeBySuffix = func() map[string]string {
	m := map[string]string{}
	for _, t := range []string{
		"base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
		"instant", "integer", "markdown", "oid", "positiveInt", "string", "time",
		"unsignedInt", "uri", "url", "uuid",
		"Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding",
		"ContactDetail", "ContactPoint", "Contributor", "Count", "DataRequirement",
		"Distance", "Dosage", "Duration", "Expression", "HumanName", "Identifier", "Meta",
		"Money", "ParameterDefinition", "Period", "Quantity", "Range", "Ratio", "Reference",
		"RelatedArtifact", "SampledData", "Signature", "Timing", "TriggerDefinition",
		"UsageContext",
	} {
		m[strings.ToUpper(t[:1])+t[1:]] = t
	}
	return m
}()

// parentType gives the base type of FHIR data types that specialise another
// data type other than Element (R4 type hierarchy).
var parentType = map[string]string{
	"code": "string", "id": "string", "markdown": "string",
	"canonical": "uri", "oid": "uri", "url": "uri", "uuid": "uri",
	"positiveInt": "integer", "unsignedInt": "integer",
	"Age": "Quantity", "Count": "Quantity", "Distance": "Quantity", "Duration": "Quantity",
	"MoneyQuantity": "Quantity", "SimpleQuantity": "Quantity",
	"Dosage": "BackboneElement", "ElementDefinition": "BackboneElement",
	"MarketingStatus": "BackboneElement", "Population": "BackboneElement",
	"ProdCharacteristic": "BackboneElement", "ProductShelfLife": "BackboneElement",
	"SubstanceAmount": "BackboneElement", "Timing": "BackboneElement",
}

// typeSpec is a resolved type specifier.
type typeSpec struct {
	system bool   // System namespace rather than FHIR
	name   string // type name without namespace
}

func (t typeSpec) String() string {
	if t.system {
		return "System." + t.name
	}
	return "FHIR." + t.name
}

// resolveTypeSpec turns "X", "FHIR.X" or "System.X" into a typeSpec.
func resolveTypeSpec(parts []string) (typeSpec, bool) {
	switch len(parts) {
	case 1:
		return typeSpec{system: systemTypes[parts[0]], name: parts[0]}, true
	case 2:
		switch parts[0] {
		case "FHIR":
			return typeSpec{name: parts[1]}, true
		case "System":
			return typeSpec{system: true, name: parts[1]}, true
		}
	}
	return typeSpec{}, false
}

func isResourceNode(n Node) bool {
	m, ok := n.Value.(map[string]any)
	if !ok {
		return false
	}
	rt, ok := m["resourceType"].(string)
	return ok && rt == n.Type && rt != ""
}

func isDomainResourceType(t string) bool {
	return t != "Bundle" && t != "Binary" && t != "Parameters"
}

// nodeIs reports whether n is of type t or a subtype of it.
func nodeIs(n Node, t typeSpec) bool {
	if n.Type == "" {
		return false
	}
	if t.system {
		return n.Type == "System."+t.name
	}
	if strings.HasPrefix(n.Type, "System.") {
		return false
	}
	if n.Type == t.name {
		return true
	}
	switch t.name {
	case "Resource", "DomainResource":
		return isResourceNode(n) && (t.name == "Resource" || isDomainResourceType(n.Type))
	case "string", "uri", "integer", "Quantity", "BackboneElement", "Element":
		// the only types with subtypes other than the resources
	default:
		return false
	}
	if isResourceNode(n) {
		return false
	}
	for cur := n.Type; ; {
		p, ok := parentType[cur]
		if !ok {
			if cur == "Element" {
				return false
			}
			p = "Element"
		}
		if p == t.name {
			return true
		}
		cur = p
	}
}

// primitiveType infers the FHIR type of a JSON primitive without a model.
func primitiveType(v any) string {
	switch x := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "decimal"
		}
		return "integer"
	}
	return ""
}
