package schemas

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"sync"
	"unicode/utf8"

	"github.com/hamba/avro/v2"

	"github.com/rtstack/rtstack/events"
)

// Wire format: magic byte, 4-byte big-endian schema id, Avro body.
const (
	magicByte  = 0
	headerSize = 5
)

// Codec encodes events with the newest schema of their type and decodes any
// record whose writer schema is known, resolving it to the newest version.
// It is safe for concurrent use.
type Codec struct {
	reg *Registry
	api avro.API

	readers sync.Pool // *avro.Reader, reused across decodes

	mu       sync.RWMutex        // guards resolved
	resolved map[int]avro.Schema // writer id → writer resolved against the latest reader
}

// NewCodec returns a codec over reg.
func NewCodec(reg *Registry) *Codec {
	c := &Codec{
		reg: reg,
		// Bounded so a corrupt length prefix cannot allocate gigabytes.
		api:      avro.Config{MaxByteSliceSize: 1 << 20, MaxSliceAllocSize: 1 << 16}.Freeze(),
		resolved: map[int]avro.Schema{},
	}
	c.readers.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(c.api)) }
	return c
}

// Registry returns the schemas the codec knows.
func (c *Codec) Registry() *Registry { return c.reg }

// Encode returns ev in the wire format, written with the newest schema of its
// type.
func (c *Codec) Encode(ev events.Event) ([]byte, error) {
	s := c.reg.Latest(ev.Type())
	if s == nil {
		return nil, fmt.Errorf("encode %s: no schema", ev.Type())
	}
	return c.encode(s, ev)
}

// EncodeVersion writes ev with version v of its type's schema. Tests use it
// to produce records as an older binary would have.
func (c *Codec) EncodeVersion(ev events.Event, v int) ([]byte, error) {
	s := c.reg.Version(ev.Type(), v)
	if s == nil {
		return nil, fmt.Errorf("encode %s: no schema version %d", ev.Type(), v)
	}
	return c.encode(s, ev)
}

func (c *Codec) encode(s *Schema, ev events.Event) ([]byte, error) {
	body, err := c.api.Marshal(s.Avro, ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s v%d: %w", s.Type, s.Version, err)
	}
	out := make([]byte, headerSize, headerSize+len(body))
	out[0] = magicByte
	binary.BigEndian.PutUint32(out[1:], uint32(s.ID))
	return append(out, body...), nil
}

// SchemaID returns the writer schema id of a wire-format record.
func SchemaID(b []byte) (int, error) {
	if len(b) < headerSize || b[0] != magicByte {
		return 0, &DecodeError{Reason: ReasonNotWireFormat, Detail: "no 0x00 magic byte and 4-byte schema id"}
	}
	return int(binary.BigEndian.Uint32(b[1:headerSize])), nil
}

// Decode is the one way a consumer reads a record of the log: value is the
// record's value, eventType its event-type header ("" when absent). It
// returns a new event of the writer schema's type, resolved to the newest
// version, or a *DecodeError saying why the record can never be read. It is
// strict, so every consumer refuses the same records: the body must fit the
// schema it names exactly (no bytes left over, strings UTF-8) and a present
// header must name the schema's type.
func (c *Codec) Decode(value []byte, eventType string) (events.Event, error) {
	id, err := SchemaID(value)
	if err != nil {
		return nil, err
	}
	w := c.reg.ByID(id)
	if w == nil {
		return nil, &DecodeError{Reason: ReasonUnknownSchema, SchemaID: id, Detail: fmt.Sprintf("schema id %d", id)}
	}
	if eventType != "" && eventType != string(w.Type) {
		return nil, &DecodeError{Reason: ReasonTypeMismatch, SchemaID: id,
			Detail: fmt.Sprintf("header event-type %q, schema %d is %s v%d", eventType, id, w.Type, w.Version)}
	}
	reader, err := c.readerFor(w)
	if err != nil {
		return nil, err
	}
	ev, err := events.New(w.Type)
	if err != nil {
		return nil, err
	}
	if err := c.readExactly(reader, value[headerSize:], ev); err != nil {
		err.SchemaID = id
		err.Detail = fmt.Sprintf("%s v%d (schema %d): %s", w.Type, w.Version, id, err.Detail)
		return nil, err
	}
	return ev, nil
}

// readExactly decodes body into ev and fails unless it used every byte:
// hamba's Unmarshal ignores what follows a value, which would let a record
// of one type pass for a shorter one.
func (c *Codec) readExactly(schema avro.Schema, body []byte, ev events.Event) *DecodeError {
	r := c.readers.Get().(*avro.Reader)
	defer func() {
		r.Error = nil
		r.Reset(nil)
		c.readers.Put(r)
	}()
	r.Reset(body)
	r.ReadVal(schema, ev)
	if r.Error != nil {
		return &DecodeError{Reason: ReasonBodyMismatch, Detail: "body does not decode", Err: r.Error}
	}
	if r.Peek(); r.Error == nil {
		return &DecodeError{Reason: ReasonTrailingBytes, Detail: "bytes left after the record"}
	}
	if field, ok := invalidUTF8(reflect.ValueOf(ev).Elem()); !ok {
		return &DecodeError{Reason: ReasonBodyMismatch, Detail: fmt.Sprintf("field %s is not UTF-8", field)}
	}
	return nil
}

// invalidUTF8 reports the first string field of v (a struct, walked through
// embedded structs and string slices) that is not valid UTF-8, as Avro
// strings must be.
func invalidUTF8(v reflect.Value) (string, bool) {
	name := func(i int) string { return v.Type().Field(i).Name } // only on failure
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			if !utf8.ValidString(f.String()) {
				return name(i), false
			}
		case reflect.Slice:
			if f.Type().Elem().Kind() != reflect.String {
				continue
			}
			for j := range f.Len() {
				if !utf8.ValidString(f.Index(j).String()) {
					return fmt.Sprintf("%s[%d]", name(i), j), false
				}
			}
		case reflect.Struct:
			if bad, ok := invalidUTF8(f); !ok {
				return name(i) + "." + bad, false
			}
		default:
		}
	}
	return "", true
}

// readerFor returns the schema to decode w's records with: w itself if it is
// the newest version, else w resolved against the newest.
func (c *Codec) readerFor(w *Schema) (avro.Schema, error) {
	latest := c.reg.Latest(w.Type)
	if latest == w {
		return w.Avro, nil
	}
	c.mu.RLock()
	s, ok := c.resolved[w.ID]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	s, err := avro.NewSchemaCompatibility().Resolve(latest.Avro, w.Avro)
	if err != nil {
		return nil, fmt.Errorf("resolve %s v%d to v%d: %w", w.Type, w.Version, latest.Version, err)
	}
	c.mu.Lock()
	c.resolved[w.ID] = s
	c.mu.Unlock()
	return s, nil
}
