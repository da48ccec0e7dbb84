// Tests of delete_equal.go, copied beside it into FerretDB's module by tools/infra.py (a test file is not
// built into the binary); tests/integration/test_local_store.py runs them with FerretDB's own query tests.
package postgresql

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/FerretDB/FerretDB/internal/backends"
)

func TestDeleteStringEqualSQL(t *testing.T) {
	t.Parallel()

	q, args := deleteStringEqualSQL(`"db"."t_1"`, []backends.StringEquality{{Key: "hour", Value: `2026-12-02T07 "x"`}})
	assert.Equal(t, `DELETE FROM "db"."t_1" WHERE _jsonb->$1 @> $2 AND _jsonb->$1 = $2`+
		` AND _jsonb->'$s'->'p'->$1->>'t' = 'string'`, q)
	// the value is bound as its JSON, quoted and escaped, never spliced into the statement
	assert.Equal(t, []any{"hour", `"2026-12-02T07 \"x\""`}, args)

	q, args = deleteStringEqualSQL(`"db"."t_1"`, []backends.StringEquality{
		{Key: "state", Value: "published"}, {Key: "day", Value: "2026-12-02"},
	})
	assert.Equal(t, `DELETE FROM "db"."t_1" WHERE _jsonb->$1 @> $2 AND _jsonb->$1 = $2`+
		` AND _jsonb->'$s'->'p'->$1->>'t' = 'string'`+
		` AND _jsonb->$3 @> $4 AND _jsonb->$3 = $4 AND _jsonb->'$s'->'p'->$3->>'t' = 'string'`, q)
	assert.Equal(t, []any{"state", `"published"`, "day", `"2026-12-02"`}, args)
}
