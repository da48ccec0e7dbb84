// Replaces FerretDB v1.24.2's internal/util/resource/resource.go when tools/infra.py builds FerretDB (it
// copies the module and builds against the copy): Track and Untrack only check their arguments.
//
// Upstream, every iterator and cursor is recorded in a runtime/pprof profile (a stack walk per object) and
// given a finalizer that panics the whole server if the object is collected without Untrack: a leak detector
// for FerretDB's own tests. Under the registry's request mix it was 9% of FerretDB's CPU (pprof, 500
// requests/s); without it FerretDB used 12% less CPU per request and the mix's p99 fell from 118 to 67-84 ms
// (bench/RESULTS.md). And a missed Untrack would take the local store down instead of leaking one object.
package resource

// Token should be a field of a tracked object.
//
// The underlying type is not struct{}: two distinct zero-size variables may have the same address.
type Token byte

// NewToken returns a new Token.
func NewToken() *Token {
	return new(Token)
}

// Track tracked the lifetime of an object upstream; here it only checks its arguments.
func Track(obj any, token *Token) {
	checkArgs(obj, token)
}

// Untrack is the counterpart of Track.
func Untrack(obj any, token *Token) {
	checkArgs(obj, token)
}

func checkArgs(obj any, token *Token) {
	if obj == nil {
		panic("obj must not be nil")
	}

	if token == nil {
		panic("token must not be nil")
	}
}
