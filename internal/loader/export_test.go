package loader

// ScanHead exposes scanHead to the tests of package loader_test.
func ScanHead(data []byte) (resourceType, typ, id string, entries int, ok bool) {
	h, ok := scanHead(data)
	return h.resourceType, h.typ, h.id, h.entries, ok
}
