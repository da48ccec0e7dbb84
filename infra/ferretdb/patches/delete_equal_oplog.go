// Added to FerretDB v1.24.2's internal/backends/decorators/oplog when tools/infra.py builds FerretDB: see
// internal/backends/postgresql/delete_equal.go in the module copy (patches/delete_equal.go here).
package oplog

import (
	"context"

	"github.com/FerretDB/FerretDB/internal/backends"
)

// DeleteStringEqual implements backends.StringEqualDeleter. Where an oplog exists it does nothing: the
// oplog records each deleted `_id`, which only the reading path knows.
func (c *collection) DeleteStringEqual(ctx context.Context, eqs []backends.StringEquality) (int32, bool, error) {
	d, ok := c.origC.(backends.StringEqualDeleter)
	if !ok || c.oplogCollection(ctx) != nil {
		return 0, false, nil
	}

	return d.DeleteStringEqual(ctx, eqs)
}
