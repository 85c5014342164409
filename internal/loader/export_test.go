package loader

// ScanHead exposes scanHead to the tests of package loader_test.
func ScanHead(data []byte) (resourceType, typ, id string, entries int, ok bool) {
	h, ok := scanHead(data)
	return h.resourceType, h.typ, h.id, h.entries, ok
}

// CountEntries exposes countEntries and scanStatuses to the tests of
// package loader_test.
func CountEntries(body []byte) (ok, bad int, firstErr string) { return countEntries(body) }

// ScanStatuses exposes scanStatuses.
func ScanStatuses(body []byte) (n int, ok bool) { return scanStatuses(body) }
