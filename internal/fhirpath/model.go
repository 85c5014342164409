package fhirpath

import "sync"

// CachedModel wraps m so that each (typeName, element) question is asked of
// m once; later answers come from memory without allocating. Use it when m
// builds a new slice per call (as *fhir.Model does) and the same
// expressions run over many resources. The cache grows to at most the number
// of distinct questions the model can answer, which for R4 is bounded by
// its element count. It is safe for concurrent use; the returned slices are
// shared and must not be modified.
func CachedModel(m Model) Model {
	return &cachedModel{m: m, byType: make(map[string]map[string][]string)}
}

type cachedModel struct {
	m      Model
	mu     sync.RWMutex
	byType map[string]map[string][]string
}

func (c *cachedModel) ElementTypes(typeName, element string) []string {
	c.mu.RLock()
	if els, ok := c.byType[typeName]; ok {
		if t, ok := els[element]; ok {
			c.mu.RUnlock()
			return t
		}
	}
	c.mu.RUnlock()
	t := c.m.ElementTypes(typeName, element)
	c.mu.Lock()
	els := c.byType[typeName]
	if els == nil {
		els = make(map[string][]string)
		c.byType[typeName] = els
	}
	els[element] = t
	c.mu.Unlock()
	return t
}
