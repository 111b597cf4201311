package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/rtstack/rtstack/events"
)

// Wire format: magic byte, 4-byte big-endian schema id, Avro body.
const (
	magicByte  = 0
	headerSize = 5
)

// Errors a caller branches on: both mean the record can never be decoded by
// this binary, so a projector parks it instead of retrying.
var (
	// ErrMalformed: the bytes are not in the wire format or the Avro body does
	// not match its writer schema.
	ErrMalformed = errors.New("malformed record")
	// ErrUnknownSchema: the record names a schema id this registry lacks.
	ErrUnknownSchema = errors.New("unknown schema id")
)

// Codec encodes events with the newest schema of their type and decodes any
// record whose writer schema is known, resolving it to the newest version.
// It is safe for concurrent use.
type Codec struct {
	reg *Registry
	api avro.API

	mu       sync.RWMutex        // guards resolved
	resolved map[int]avro.Schema // writer id → writer resolved against the latest reader
}

// NewCodec returns a codec over reg.
func NewCodec(reg *Registry) *Codec {
	return &Codec{
		reg: reg,
		// Bounded so a corrupt length prefix cannot allocate gigabytes.
		api:      avro.Config{MaxByteSliceSize: 1 << 20, MaxSliceAllocSize: 1 << 16}.Freeze(),
		resolved: map[int]avro.Schema{},
	}
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
		return 0, fmt.Errorf("%w: no wire-format header", ErrMalformed)
	}
	return int(binary.BigEndian.Uint32(b[1:headerSize])), nil
}

// Decode reads a wire-format record into a new event of the writer schema's
// type. Errors wrap ErrMalformed or ErrUnknownSchema.
func (c *Codec) Decode(b []byte) (events.Event, error) {
	id, err := SchemaID(b)
	if err != nil {
		return nil, err
	}
	w := c.reg.ByID(id)
	if w == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownSchema, id)
	}
	reader, err := c.readerFor(w)
	if err != nil {
		return nil, err
	}
	ev, err := events.New(w.Type)
	if err != nil {
		return nil, err
	}
	if err := c.api.Unmarshal(reader, b[headerSize:], ev); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %w", ErrMalformed, w.Type, w.Version, err)
	}
	return ev, nil
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
