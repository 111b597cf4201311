package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// The messages COPY writes Postgres' binary COPY format itself: pgx's
// CopyFrom boxes every value in an interface and plans its encoding per
// value, which cost a replay about as much CPU as decoding the events. The
// format: a header, then per row a field count and each field as a length
// and its binary send form, then a trailer (see "COPY … Binary Format" in
// the Postgres manual).

// copySignature starts every binary COPY stream: the 11-byte signature,
// then flags and the header extension length, both 0.
const copySignature = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

// textOID is the element type a text[] value names in its binary form.
const textOID = 25

// messageCopySQL is the COPY statement of messageColumns in schema %s.
const messageCopySQL = `COPY %s.messages (room, message_id, "user", text, ts, "partition", "offset",
	edited, edited_ts, deleted, deleted_ts, mentions) FROM STDIN (FORMAT binary)`

// copyMessages inserts new rows with COPY. A duplicate key fails the copy,
// and apply folds again with the existing rows loaded.
func copyMessages(ctx context.Context, tx pgx.Tx, schema string, ms []*msg) error {
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, &messageCopy{ms: ms}, fmt.Sprintf(messageCopySQL, schema)); err != nil {
		return fmt.Errorf("copy messages: %w", err)
	}
	return nil
}

// messageCopy is an io.Reader of the binary COPY stream of ms: it encodes
// rows as the connection asks for bytes, so a batch is never held encoded
// in full.
type messageCopy struct {
	ms      []*msg
	next    int    // index of the next row to encode
	buf     []byte // the last encoding, reused row to row
	pending []byte // the part of buf not yet read
	started bool   // the signature was written
	done    bool   // the trailer was written
}

// Read fills p with whole encoded rows, and with the part of one that fits.
func (c *messageCopy) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(c.pending) == 0 && !c.fill() {
			break
		}
		k := copy(p[n:], c.pending)
		n += k
		c.pending = c.pending[k:]
	}
	if n == 0 && c.done && len(c.pending) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// fill encodes what comes next into pending (the signature, a row or the
// trailer); false once everything was encoded.
func (c *messageCopy) fill() bool {
	buf := c.buf[:0]
	switch {
	case !c.started:
		c.started = true
		buf = append(buf, copySignature...)
	case c.next < len(c.ms):
		buf = appendMessageRow(buf, c.ms[c.next])
		c.next++
	case !c.done:
		c.done = true
		buf = binary.BigEndian.AppendUint16(buf, 0xffff) // field count -1: the end
	default:
		return false
	}
	c.buf, c.pending = buf, buf
	return true
}

// appendMessageRow appends m as one binary COPY row of messageColumns.
func appendMessageRow(b []byte, m *msg) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(messageColumns)))
	b = appendText(b, m.room)
	b = appendText(b, m.id)
	b = appendText(b, m.user)
	b = appendText(b, m.text)
	b = appendInt8(b, m.ts)
	b = binary.BigEndian.AppendUint32(b, 4)
	b = binary.BigEndian.AppendUint32(b, uint32(m.partition))
	b = appendInt8(b, m.offset)
	b = appendBool(b, m.edited)
	b = appendInt8(b, m.editedTS)
	b = appendBool(b, m.deleted)
	b = appendInt8(b, m.deletedTS)
	return appendTextArray(b, m.mentions)
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendBool(b []byte, v bool) []byte {
	b = binary.BigEndian.AppendUint32(b, 1)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendTextArray appends ss as a one-dimensional text[] without NULLs
// (an empty one has no dimension), the form array_recv reads.
func appendTextArray(b []byte, ss []string) []byte {
	if len(ss) == 0 {
		b = binary.BigEndian.AppendUint32(b, 12)
		b = binary.BigEndian.AppendUint32(b, 0) // dimensions
		b = binary.BigEndian.AppendUint32(b, 0) // has NULLs
		return binary.BigEndian.AppendUint32(b, textOID)
	}
	size := 20
	for _, s := range ss {
		size += 4 + len(s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, 0) // has NULLs
	b = binary.BigEndian.AppendUint32(b, textOID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ss)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	for _, s := range ss {
		b = appendText(b, s)
	}
	return b
}
