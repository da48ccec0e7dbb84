// Added to FerretDB v1.24.2's internal/backends when tools/infra.py builds FerretDB: see
// internal/backends/postgresql/delete_equal.go in the module copy (patches/delete_equal.go here).
package backends

import "context"

// StringEquality is a top-level key and the string it must hold.
type StringEquality struct {
	Key   string
	Value string
}

// StringEqualDeleter is a Collection that can delete the documents whose top-level keys hold exactly their
// strings, without reading them. handled is false when it did nothing and the caller must read and delete
// them itself. A document where a key is an array holding its string is never deleted by it.
type StringEqualDeleter interface {
	DeleteStringEqual(ctx context.Context, eqs []StringEquality) (deleted int32, handled bool, err error)
}

// DeleteStringEqual implements StringEqualDeleter when the wrapped collection does.
func (cc *collectionContract) DeleteStringEqual(ctx context.Context, eqs []StringEquality) (int32, bool, error) {
	d, ok := cc.c.(StringEqualDeleter)
	if !ok {
		return 0, false, nil
	}

	n, handled, err := d.DeleteStringEqual(ctx, eqs)
	checkError(err)

	return n, handled, err
}
