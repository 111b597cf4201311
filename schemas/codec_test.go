package schemas_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/schemas"
)

func codec(t testing.TB) *schemas.Codec {
	t.Helper()
	reg, err := schemas.Embedded()
	if err != nil {
		t.Fatalf("embedded schemas: %v", err)
	}
	return schemas.NewCodec(reg)
}

func sample() []events.Event {
	env := events.Envelope{ID: "e1", Room: "room-1", User: "alice", Time: 1700000000123}
	return []events.Event{
		&events.MessageSent{Envelope: env, MessageID: "m1", ClientID: "c1", Text: "héllo @bob", Mentions: []string{"bob"}},
		&events.MessageEdited{Envelope: env, MessageID: "m1", Text: "edited"},
		&events.MessageDeleted{Envelope: env, MessageID: "m1"},
		&events.ReactionAdded{Envelope: env, MessageID: "m1", Emoji: "👍"},
		&events.ReactionRemoved{Envelope: env, MessageID: "m1", Emoji: "👍"},
		&events.MemberJoined{Envelope: env},
		&events.MemberLeft{Envelope: env},
		&events.WebhookRegistered{Envelope: env, WebhookID: "w1", URL: "https://example.test/hook", Secret: "s"},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	c := codec(t)
	seen := map[events.Type]bool{}
	for _, ev := range sample() {
		t.Run(string(ev.Type()), func(t *testing.T) {
			b, err := c.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			id, err := schemas.SchemaID(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Registry().ByID(id); got != c.Registry().Latest(ev.Type()) {
				t.Fatalf("record names schema %d, want the latest %s", id, ev.Type())
			}
			got, err := c.Decode(b, "")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Fatalf("round trip: got %#v, want %#v", got, ev)
			}
		})
		seen[ev.Type()] = true
	}
	for _, typ := range events.Types {
		if !seen[typ] {
			t.Errorf("no round-trip case for %s", typ)
		}
	}
}

// An event written with MessageSent v1 (no mentions) reads with v2's default.
func TestOldVersionReadsWithDefaults(t *testing.T) {
	c := codec(t)
	ev := &events.MessageSent{Envelope: events.Envelope{ID: "e", Room: "r", User: "u", Time: 5}, MessageID: "m", ClientID: "c", Text: "hi @x", Mentions: []string{"x"}}
	b, err := c.EncodeVersion(ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b, "")
	if err != nil {
		t.Fatal(err)
	}
	m := got.(*events.MessageSent)
	if m.Text != "hi @x" || len(m.Mentions) != 0 {
		t.Fatalf("v1 record read as %#v: want text kept and no mentions", m)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	c := codec(t)
	good, err := c.Encode(sample()[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, schemas.ErrMalformed},
		{"no magic byte", append([]byte{1}, good[1:]...), schemas.ErrMalformed},
		{"short header", good[:3], schemas.ErrMalformed},
		{"unknown id", append([]byte{0, 0, 0, 0x7f, 0}, good[5:]...), schemas.ErrUnknownSchema},
		{"truncated body", good[:len(good)-4], schemas.ErrMalformed},
		{"negative length", []byte("\x00\x00\x00\x00\x01\x7f"), schemas.ErrMalformed},
		{"huge length", []byte("\x00\x00\x00\x00\x01\xfe\xff\xff\xff\x0f"), schemas.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Decode(tt.in, "")
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode: got %v, want %v", err, tt.want)
			}
		})
	}
}

// Every version of a type must read data written by every older version, so
// a schema change that would strand old events fails CI.
func TestEveryVersionReadsEveryOlder(t *testing.T) {
	reg, err := schemas.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	compat := avro.NewSchemaCompatibility()
	for _, typ := range events.Types {
		versions := reg.Versions(typ)
		for i, reader := range versions {
			for _, writer := range versions[:i+1] {
				if err := compat.Compatible(reader.Avro, writer.Avro); err != nil {
					t.Errorf("%s v%d cannot read v%d: %v", typ, reader.Version, writer.Version, err)
				}
			}
		}
	}
}

// TestDecodeIsStrict feeds hand-built records that a lenient reader would
// accept as some event: each is refused with its reason.
func TestDecodeIsStrict(t *testing.T) {
	c := codec(t)
	reg := c.Registry()
	env := events.Envelope{ID: "e1", Room: "room-1", User: "alice", Time: 1700000000123}
	sent, err := c.Encode(&events.MessageSent{Envelope: env, MessageID: "m1", Text: "hi @bob", Mentions: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	joined, err := c.Encode(&events.MemberJoined{Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	withID := func(b []byte, s *schemas.Schema) []byte {
		out := append([]byte{0, 0, 0, 0, byte(s.ID)}, b[5:]...)
		return out
	}
	// A MemberJoined body whose room is not UTF-8, hand-encoded: id "e", room
	// 0xff, user "u", ts 0.
	badUTF8 := append(joined[:5:5], 2, 'e', 2, 0xff, 2, 'u', 0)
	tests := []struct {
		name   string
		value  []byte
		header string
		want   schemas.Reason
	}{
		{"trailing byte", append(sent[:len(sent):len(sent)], 0), "", schemas.ReasonTrailingBytes},
		{"v2 body named as v1", withID(sent, reg.Version(events.TypeMessageSent, 1)), "", schemas.ReasonTrailingBytes},
		{"MessageSent body named as MemberJoined", withID(sent, reg.Latest(events.TypeMemberJoined)), "", schemas.ReasonTrailingBytes},
		{"MemberJoined body named as MessageSent", withID(joined, reg.Latest(events.TypeMessageSent)), "", schemas.ReasonBodyMismatch},
		{"string not UTF-8", badUTF8, "", schemas.ReasonBodyMismatch},
		{"header names another type", sent, "MemberJoined", schemas.ReasonTypeMismatch},
		{"header names no type", sent, "Bogus", schemas.ReasonTypeMismatch},
		{"no wire format", []byte("{}"), "MessageSent", schemas.ReasonNotWireFormat},
		{"unknown schema", []byte{0, 0, 0, 1, 0}, "", schemas.ReasonUnknownSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := c.Decode(tt.value, tt.header)
			var de *schemas.DecodeError
			if !errors.As(err, &de) || de.Reason != tt.want {
				t.Fatalf("Decode = %v, %v; want a %s DecodeError", ev, err, tt.want)
			}
			if schemas.ReasonOf(fmt.Errorf("wrapped: %w", err)) != tt.want {
				t.Fatalf("ReasonOf(%v) lost the reason", err)
			}
			wantKind := schemas.ErrMalformed
			if tt.want == schemas.ReasonUnknownSchema {
				wantKind = schemas.ErrUnknownSchema
			}
			if !errors.Is(err, wantKind) || !strings.HasPrefix(err.Error(), wantKind.Error()+": "+string(tt.want)+": ") {
				t.Fatalf("error %q: want it to wrap %v and name it, then its reason", err, wantKind)
			}
		})
	}

	// The well-formed record reads with its own header or none.
	for _, h := range []string{"", "MessageSent"} {
		if ev, err := c.Decode(sent, h); err != nil || ev.(*events.MessageSent).Text != "hi @bob" {
			t.Fatalf("Decode(header %q) = %v, %v", h, ev, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	c := codec(f)
	for _, ev := range sample() {
		b, err := c.Encode(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
		f.Add(b, string(ev.Type()))
	}
	f.Fuzz(func(t *testing.T, b []byte, header string) {
		ev, err := c.Decode(b, header)
		if err != nil {
			if schemas.ReasonOf(err) == "" || (!errors.Is(err, schemas.ErrMalformed) && !errors.Is(err, schemas.ErrUnknownSchema)) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if header != "" && header != string(ev.Type()) {
			t.Fatalf("header %q accepted for a %s", header, ev.Type())
		}
		if _, err := c.Encode(ev); err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
	})
}

// BenchmarkDecode reads a MessageSent as every consumer does, header and
// all, beside a bare Avro unmarshal of the same body (what decoding cost
// before the leftover-byte and UTF-8 checks), so the ratio of the two is
// the cost of strictness on this machine.
func BenchmarkDecode(b *testing.B) {
	c := codec(b)
	rec, err := c.Encode(sample()[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Decode(rec, string(events.TypeMessageSent)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal-only", func(b *testing.B) {
		schema := c.Registry().Latest(events.TypeMessageSent).Avro
		b.ReportAllocs()
		for b.Loop() {
			var ev events.MessageSent
			if err := avro.Unmarshal(schema, rec[5:], &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
