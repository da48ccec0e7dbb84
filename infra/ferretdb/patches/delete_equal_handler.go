// Added to FerretDB v1.24.2's internal/handler when tools/infra.py builds FerretDB, which renames
// msg_delete.go's execDelete to execDeleteScan: see internal/backends/postgresql/delete_equal.go in the
// module copy (patches/delete_equal.go here).
package handler

import (
	"context"
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/handler/common"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// execDelete performs a single delete operation: a many-document delete of `{key: "string", ...}` first
// deletes the documents holding the strings themselves without reading them, where the backend can; then
// upstream's execDeleteScan reads and deletes whatever else matches (arrays holding a string).
//
// It returns a number of deleted documents or error.
// The signature spans lines so that the rewrite of msg_delete.go's (tools/infra.py) leaves this one be.
func (h *Handler) execDelete(
	ctx context.Context, c backends.Collection, p *common.Delete,
) (int32, error) {
	var deleted int32

	if eqs := stringEqualities(p); eqs != nil && !h.DisablePushdown {
		if d, can := c.(backends.StringEqualDeleter); can {
			n, handled, err := d.DeleteStringEqual(ctx, eqs)
			if err != nil {
				return 0, lazyerrors.Error(err)
			}

			if handled {
				deleted = n
			}
		}
	}

	n, err := h.execDeleteScan(ctx, c, p)

	return deleted + n, err
}

// maxStringEqualities bounds the keys of a filter deleted in one statement.
const maxStringEqualities = 8

// stringEqualities returns the keys and strings of a delete whose filter is only top-level keys, each
// equal to a string, or nil. Never for a limited delete (deleteOne must pick a single document, which the
// scan does).
func stringEqualities(p *common.Delete) []backends.StringEquality {
	if p.Limited || p.Filter == nil || p.Filter.Len() == 0 || p.Filter.Len() > maxStringEqualities {
		return nil
	}

	eqs := make([]backends.StringEquality, 0, p.Filter.Len())
	seen := make(map[string]bool, p.Filter.Len())
	values := p.Filter.Values()

	for i, key := range p.Filter.Keys() {
		if key == "" || seen[key] || strings.HasPrefix(key, "$") || strings.Contains(key, ".") {
			return nil
		}

		value, ok := values[i].(string)
		if !ok {
			return nil
		}

		seen[key] = true
		eqs = append(eqs, backends.StringEquality{Key: key, Value: value})
	}

	return eqs
}
