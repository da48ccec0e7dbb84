// Added to FerretDB v1.24.2 as internal/handler/sjson/json when tools/infra.py builds FerretDB: what its sjson
// codec (documents to and from PostgreSQL's JSON) imports instead of encoding/json (FERRET_IMPORT_REWRITES).
//
// sjson decodes every value, down to each string of each stored document, with a Decoder of its own over a
// bytes.Reader of that value alone. A goccy/go-json Decoder is a stream: it allocates a 512-byte buffer per
// Decoder, reads its input in pieces and decodes a value longer than its first read element by element (pprof
// under the registry's mix: that slow path 20% of FerretDB's CPU, the buffers 4% more). Here a Decoder hands
// the whole value to goccy/go-json's Unmarshal at once, which decodes from one slice: a stored document in a
// third less time (bench/RESULTS.md).
//
// What sjson relies on is kept: one value per Decoder, DisallowUnknownFields, and a Buffered reader that
// holds what follows the value (sjson's checkConsumed). A value that Unmarshal refuses (truncated, or followed
// by more than white space: never what PostgreSQL returns) is decoded again by goccy/go-json's stream, so the
// errors are the ones sjson had. FerretDB's own sjson tests pass against it (tests/integration/test_local_store.py
// runs them on every build `make infra-up` made).
package json

import (
	"bytes"
	"fmt"
	"io"

	gojson "github.com/goccy/go-json"
)

type (
	RawMessage  = gojson.RawMessage
	Marshaler   = gojson.Marshaler
	Unmarshaler = gojson.Unmarshaler
)

func Marshal(v any) ([]byte, error) { return gojson.Marshal(v) }

func Unmarshal(data []byte, v any) error { return gojson.Unmarshal(data, v) }

func Compact(dst *bytes.Buffer, src []byte) error { return gojson.Compact(dst, src) }

// disallowUnknownFieldsFlag is goccy/go-json's decoder.DisallowUnknownFieldsOption, which its internal
// package keeps from other importers; init checks it still means that.
const disallowUnknownFieldsFlag = 1 << 4

func disallowUnknownFields(opt *gojson.DecodeOption) { opt.Flags |= disallowUnknownFieldsFlag }

func init() {
	var s struct{ A int }
	if gojson.UnmarshalWithOption([]byte(`{"A":1,"B":2}`), &s, disallowUnknownFields) == nil {
		panic("sjson/json: goccy/go-json's DisallowUnknownFields flag moved; update disallowUnknownFieldsFlag")
	}
}

// Decoder decodes the one value its reader holds.
type Decoder struct {
	r      io.Reader
	strict bool
	stream *gojson.Decoder // the decoder of a value Unmarshal refused
}

func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: r} }

func (d *Decoder) DisallowUnknownFields() { d.strict = true }

// Decode reads the rest of the reader and decodes it as one value.
func (d *Decoder) Decode(v any) error {
	var data []byte
	if br, ok := d.r.(*bytes.Reader); ok {
		data = make([]byte, br.Len())
		if _, err := io.ReadFull(br, data); err != nil {
			return fmt.Errorf("sjson/json: %w", err)
		}
	} else {
		var err error
		if data, err = io.ReadAll(d.r); err != nil {
			return fmt.Errorf("sjson/json: %w", err)
		}
	}
	var err error
	if d.strict {
		err = gojson.UnmarshalWithOption(data, v, disallowUnknownFields)
	} else {
		err = gojson.Unmarshal(data, v)
	}
	if err == nil {
		return nil
	}
	d.stream = gojson.NewDecoder(bytes.NewReader(data))
	if d.strict {
		d.stream.DisallowUnknownFields()
	}
	return d.stream.Decode(v)
}

// Buffered holds what followed the value: nothing, unless Unmarshal refused it.
func (d *Decoder) Buffered() io.Reader {
	if d.stream != nil {
		return d.stream.Buffered()
	}
	return bytes.NewReader(nil)
}
