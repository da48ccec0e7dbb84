// Added to FerretDB v1.24.2's internal/backends/postgresql when tools/infra.py builds FerretDB (it copies the
// module and builds against the copy; a one-line rewrite of query.go calls filterIn for `$in`).
//
// Upstream pushes down only equalities: `{hour: {$in: [a, b, c]}}` fetched every row of the table (or of the
// other pushed-down keys) and filtered them in Go, so the history store asked for one hour at a time and a
// page cost one query per hour. Here `$in` of plain values becomes the OR of the equalities filterEqual makes
// for each, which PostgreSQL serves from the same GIN twins as a single equality (a BitmapOr).
//
// This stays a pre-filter, as every pushdown in FerretDB v1: the handler applies the whole filter to what
// the query returns, so the SQL must only return a superset. Each OR term is that of an equality, which
// matches the value itself and arrays holding it, as `$in` does. A list with anything else (null, which
// also matches a missing field; documents, arrays, regular expressions; NaN), or longer than inPushdownMax,
// is not pushed down at all.
package postgresql

import (
	"math"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/internal/backends/postgresql/metadata"
	"github.com/FerretDB/FerretDB/internal/types"
)

// inPushdownMax bounds the OR terms of one `$in`: PostgreSQL plans each, and a long list is cheaper to
// filter in Go than to plan.
const inPushdownMax = 500

// filterIn returns the SQL filter and its arguments for `$in` with the list v, or "" when it is not
// pushed down. It consumes placeholders only when it returns a filter.
func filterIn(p *metadata.Placeholder, k any, v any, operator string) (string, []any) {
	list, ok := v.(*types.Array)
	if !ok || list.Len() == 0 || list.Len() > inPushdownMax {
		return "", nil
	}

	for i := 0; i < list.Len(); i++ {
		e, err := list.Get(i)
		if err != nil {
			return "", nil
		}

		switch e := e.(type) {
		case string, types.ObjectID, time.Time, bool, int32, int64:
		case float64:
			if math.IsNaN(e) {
				return "", nil
			}
		default:
			return "", nil
		}
	}

	terms := make([]string, 0, list.Len())
	var args []any

	for i := 0; i < list.Len(); i++ {
		e, _ := list.Get(i)

		f, a := filterEqual(p, k, e, operator)
		if f == "" { // unreachable for the types checked above; kept so a change upstream cannot narrow results
			panic("filterIn: an element filterEqual does not push down")
		}

		terms = append(terms, f)
		args = append(args, a...)
	}

	return "(" + strings.Join(terms, " OR ") + ")", args
}
