package sqlite

import "context"

// FlushIndex flushes every pending token into a posting segment and
// compacts, synchronously in the writer: benchmarks use it to measure
// lookups with nothing pending.
func FlushIndex(ctx context.Context, s *Store) error {
	return s.do(ctx, false, func(tx *wtx) error {
		for {
			n, err := tx.flush()
			if err != nil || n < maxFlushRows {
				if err == nil {
					_, err = tx.compact()
				}
				return err
			}
		}
	})
}
