package rest

import (
	"net/http"
)

// SearchParamInfo describes one supported search parameter for the
// CapabilityStatement.
type SearchParamInfo struct {
	Name       string `json:"name"`
	Definition string `json:"definition,omitempty"`
	Type       string `json:"type"`
}

// SearchCapabilities is implemented by a Searcher that can list the
// parameters it supports per resource type.
type SearchCapabilities interface {
	SearchParams(resourceType string) []SearchParamInfo
}

type capInteraction struct {
	Code string `json:"code"`
}

type capResource struct {
	Type              string            `json:"type"`
	Profile           string            `json:"profile,omitempty"`
	Interaction       []capInteraction  `json:"interaction"`
	Versioning        string            `json:"versioning"`
	ReadHistory       bool              `json:"readHistory"`
	UpdateCreate      bool              `json:"updateCreate"`
	ConditionalCreate bool              `json:"conditionalCreate"`
	ConditionalUpdate bool              `json:"conditionalUpdate"`
	ConditionalDelete string            `json:"conditionalDelete"`
	SearchParam       []SearchParamInfo `json:"searchParam,omitempty"`
}

// capabilities handles GET [base]/metadata: a CapabilityStatement built
// from what this server really implements.
func (a *API) capabilities(w http.ResponseWriter, r *http.Request, req *request) {
	switch mode := r.URL.Query().Get("mode"); mode {
	case "", "full":
	default:
		a.writeError(w, r, notSupported("metadata mode %q is not supported; only full", mode))
		return
	}
	interactions := []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create"}
	if a.cfg.Conditional != nil {
		interactions = append(interactions, "patch")
	}
	sc, _ := a.cfg.Searcher.(SearchCapabilities)
	if a.cfg.Searcher != nil {
		interactions = append(interactions, "search-type")
	}
	var res []capResource
	for _, t := range a.cfg.Model.ResourceTypes() {
		cr := capResource{
			Type:              t,
			Profile:           "http://hl7.org/fhir/StructureDefinition/" + t,
			Versioning:        "versioned-update",
			ReadHistory:       true,
			UpdateCreate:      true,
			ConditionalDelete: "not-supported",
			ConditionalCreate: a.cfg.Conditional != nil,
			ConditionalUpdate: a.cfg.Conditional != nil,
		}
		for _, i := range interactions {
			cr.Interaction = append(cr.Interaction, capInteraction{Code: i})
		}
		if sc != nil {
			cr.SearchParam = sc.SearchParams(t)
		}
		if a.cfg.Conditional != nil {
			cr.ConditionalDelete = "single"
		}
		res = append(res, cr)
	}
	sys := []capInteraction{{Code: "history-system"}}
	if a.cfg.Searcher != nil {
		sys = append(sys, capInteraction{Code: "search-system"})
	}
	if a.cfg.Bundles != nil {
		sys = append(sys, capInteraction{Code: "batch"}, capInteraction{Code: "transaction"})
	}
	software := map[string]any{"name": "Kiln"}
	if a.cfg.Version != "" { // FHIR strings must not be empty
		software["version"] = a.cfg.Version
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         Instant(a.cfg.Now()),
		"publisher":    "Kiln",
		"kind":         "instance",
		"software":     software,
		"implementation": map[string]any{
			"description": "Kiln FHIR R4 service for account " + req.account + "; data sealed under the account's keys",
			"url":         req.base,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"rest": []any{map[string]any{
			"mode":        "server",
			"resource":    res,
			"interaction": sys,
		}},
	}
	if a.cfg.Conditional != nil {
		cs["patchFormat"] = []string{"application/json-patch+json"}
	}
	a.writeJSON(w, r, http.StatusOK, cs)
}
