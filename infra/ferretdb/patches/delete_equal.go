// Added to FerretDB v1.24.2's internal/backends/postgresql when tools/infra.py builds FerretDB (with
// delete_equal_backends.go, delete_equal_oplog.go and delete_equal_handler.go, which carry the call down).
//
// Upstream deletes by reading every matching document (the filter pushed down as a superset), decoding
// each in Go, filtering it again, and deleting the survivors by `_id`. The history store's retention deletes
// whole hours, `{hour: h}`, thousands of documents each: FerretDB spent 30-35 us of CPU per document
// decoding rows it was about to delete, two to three times PostgreSQL's share (bench/RESULTS.md).
//
// `{key: "string"}` matches a document whose top-level `key` is that string, or an array holding it. Here
// the first kind is deleted by one statement: the value equals the string's JSON and sjson's schema says
// it is a string (an ObjectID, say, is stored as a JSON string too), with the equality's `@>` first, so
// PostgreSQL finds the rows through the same GIN twins as a query. A filter of several such keys (the
// registry's change log prunes `{state: "published", day: d}`) needs every one to hold. The handler then
// deletes the rest (arrays holding a string) the upstream way, which reads only those.
package postgresql

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/postgresql/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// DeleteStringEqual implements backends.StringEqualDeleter: it deletes the documents whose every key holds
// exactly its string. It is not handled for capped collections (their record ids order them).
func (c *collection) DeleteStringEqual(ctx context.Context, eqs []backends.StringEquality) (int32, bool, error) {
	p, err := c.r.DatabaseGetExisting(ctx, c.dbName)
	if err != nil {
		return 0, false, lazyerrors.Error(err)
	}

	if p == nil {
		return 0, true, nil
	}

	meta, err := c.r.CollectionGet(ctx, c.dbName, c.name)
	if err != nil {
		return 0, false, lazyerrors.Error(err)
	}

	if meta == nil {
		return 0, true, nil
	}

	if meta.Capped() {
		return 0, false, nil
	}

	q, args := deleteStringEqualSQL(pgx.Identifier{c.dbName, meta.TableName}.Sanitize(), eqs)

	res, err := p.Exec(ctx, q, args...)
	if err != nil {
		return 0, false, lazyerrors.Error(err)
	}

	return int32(res.RowsAffected()), true, nil
}

// deleteStringEqualSQL returns the statement that deletes the rows of table whose every key is its string.
func deleteStringEqualSQL(table string, eqs []backends.StringEquality) (string, []any) {
	var p metadata.Placeholder

	terms := make([]string, len(eqs))
	args := make([]any, 0, 2*len(eqs))

	for i, eq := range eqs {
		k, v := p.Next(), p.Next()
		terms[i] = fmt.Sprintf(
			`%[1]s->%[2]s @> %[3]s AND %[1]s->%[2]s = %[3]s AND %[1]s->'$s'->'p'->%[2]s->>'t' = 'string'`,
			metadata.DefaultColumn, k, v,
		)
		args = append(args, eq.Key, string(must.NotFail(sjson.MarshalSingleValue(eq.Value))))
	}

	return fmt.Sprintf(`DELETE FROM %s WHERE %s`, table, strings.Join(terms, " AND ")), args
}
