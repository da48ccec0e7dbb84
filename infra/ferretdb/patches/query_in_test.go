// Tests of query_in.go, copied beside it into FerretDB's module by tools/infra.py (a test file is not built
// into the binary); tests/integration/test_local_store.py runs them with FerretDB's own query tests.
package postgresql

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/FerretDB/FerretDB/internal/backends/postgresql/metadata"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

func inFilter(values ...any) *types.Document {
	return must.NotFail(types.NewDocument("v", must.NotFail(types.NewDocument("$in", must.NotFail(types.NewArray(values...))))))
}

func TestPrepareWhereClauseIn(t *testing.T) {
	t.Parallel()

	for name, tc := range map[string]struct {
		filter   *types.Document
		expected string
		args     []any
	}{
		"Strings": {
			filter:   inFilter("a", "b"),
			expected: " WHERE (_jsonb->$1 @> $2 OR _jsonb->$3 @> $4)",
			args:     []any{"v", `"a"`, "v", `"b"`},
		},
		"WithAnEquality": {
			filter: must.NotFail(types.NewDocument(
				"w", "x",
				"v", must.NotFail(types.NewDocument("$in", must.NotFail(types.NewArray("a", int64(7))))),
			)),
			expected: " WHERE _jsonb->$1 @> $2 AND (_jsonb->$3 @> $4 OR _jsonb->$5 @> $6)",
			args:     []any{"w", `"x"`, "v", `"a"`, "v", int64(7)},
		},
		"One": {
			filter:   inFilter(int32(1)),
			expected: " WHERE (_jsonb->$1 @> $2)",
			args:     []any{"v", int32(1)},
		},
		// null also matches a missing field, which no equality returns: the whole list stays in Go
		"Null":       {filter: inFilter("a", types.Null)},
		"Regex":      {filter: inFilter("a", types.Regex{Pattern: "^a"})},
		"Document":   {filter: inFilter(must.NotFail(types.NewDocument("a", "b")))},
		"Array":      {filter: inFilter(must.NotFail(types.NewArray("a")))},
		"NaN":        {filter: inFilter(math.NaN())},
		"Empty":      {filter: inFilter()},
		"NotAnArray": {filter: must.NotFail(types.NewDocument("v", must.NotFail(types.NewDocument("$in", "a"))))},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			var p metadata.Placeholder
			actual, args, err := prepareWhereClause(&p, tc.filter)
			require.NoError(t, err)
			assert.Equal(t, tc.expected, actual)

			if tc.expected == "" {
				assert.Empty(t, args)
				assert.Equal(t, "$1", p.Next(), "a list not pushed down takes no placeholder")

				return
			}

			assert.Equal(t, tc.args, args)
		})
	}
}

func TestFilterInBound(t *testing.T) {
	t.Parallel()

	values := make([]any, inPushdownMax+1)
	for i := range values {
		values[i] = int64(i)
	}

	var p metadata.Placeholder
	f, _ := filterIn(&p, "v", must.NotFail(types.NewArray(values...)), "->")
	assert.Empty(t, f)

	f, args := filterIn(&p, "v", must.NotFail(types.NewArray(values[:inPushdownMax]...)), "->")
	assert.NotEmpty(t, f)
	assert.Len(t, args, 2*inPushdownMax)
}
