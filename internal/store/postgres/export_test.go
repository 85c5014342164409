package postgres

// UsePlainSequence makes s take Seq from a plain PostgreSQL sequence
// instead of the commit counter, for the benchmark that measures what
// commit-order Seq costs. Seq is then unique but not in commit order, and
// only single-write commits are correct. The sequence must exist.
func UsePlainSequence(s *Store, sequence string) {
	s.seqSQL = `SELECT nextval('` + sequence + `') + $1::bigint - 1`
}
