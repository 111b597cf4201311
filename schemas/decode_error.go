package schemas

import (
	"errors"
	"fmt"
)

// Reason says why a record was refused, in one stable snake_case word that a
// consumer can put in a park header or a metric label.
type Reason string

// Every reason Codec.Decode gives; each is permanent (the record can never
// be decoded by this binary).
const (
	// ReasonNotWireFormat: no 0x00 magic byte and 4-byte schema id.
	ReasonNotWireFormat Reason = "not_wire_format"
	// ReasonUnknownSchema: the record names a schema id the registry lacks.
	ReasonUnknownSchema Reason = "unknown_schema"
	// ReasonBodyMismatch: the Avro body does not decode with the schema id
	// it names (too short, a bad length or union index, a string that is not
	// UTF-8).
	ReasonBodyMismatch Reason = "body_mismatch"
	// ReasonTrailingBytes: the body decodes but bytes are left after it, so
	// it was written with some other schema.
	ReasonTrailingBytes Reason = "trailing_bytes"
	// ReasonTypeMismatch: the event-type header names another type than the
	// record's schema.
	ReasonTypeMismatch Reason = "event_type_mismatch"
)

// Errors a caller branches on: both mean the record can never be decoded by
// this binary, so a projector parks it instead of retrying. Every
// *DecodeError wraps exactly one of them.
var (
	// ErrMalformed: the bytes are not in the wire format, the Avro body does
	// not fit its writer schema exactly, or the event-type header disagrees
	// with the schema.
	ErrMalformed = errors.New("malformed record")
	// ErrUnknownSchema: the record names a schema id this registry lacks.
	ErrUnknownSchema = errors.New("unknown schema id")
)

// DecodeError is the error of Codec.Decode: why the record was refused and
// which schema it named (0 if it had no wire-format header).
type DecodeError struct {
	Reason   Reason
	SchemaID int
	Detail   string // human-readable specifics
	Err      error  // the Avro library's error, if any
}

// Error reads "malformed record: trailing_bytes: MessageSent v2 (schema 9):
// bytes left after the record": the kind, the reason, the specifics.
func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("%v: %s: %s", e.kind(), e.Reason, e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrUnknownSchema or ErrMalformed, and the library's error.
func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.kind()}
	}
	return []error{e.kind(), e.Err}
}

func (e *DecodeError) kind() error {
	if e.Reason == ReasonUnknownSchema {
		return ErrUnknownSchema
	}
	return ErrMalformed
}

// ReasonOf returns the reason of the *DecodeError in err's chain, or "" if
// there is none.
func ReasonOf(err error) Reason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}
