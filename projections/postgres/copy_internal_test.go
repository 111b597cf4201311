package postgres

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestMessageCopyReadsTheSameInAnyChunking: the stream is the same however
// the connection sizes its reads, rows split across reads included.
func TestMessageCopyReadsTheSameInAnyChunking(t *testing.T) {
	ms := []*msg{
		{room: "r", id: "m1", user: "u", text: "hello", ts: 1, offset: 0, mentions: []string{"a", "bé"}},
		{room: "r", id: "m2", user: "u", text: "", ts: -1, partition: 3, offset: 1 << 40, edited: true, editedTS: 9},
		{room: "r2", id: "m3", user: "v", text: string(make([]byte, 70_000)), deleted: true, deletedTS: 7},
	}
	whole, err := io.ReadAll(&messageCopy{ms: ms})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(whole, []byte(copySignature)) || !bytes.HasSuffix(whole, []byte{0xff, 0xff}) {
		t.Fatalf("stream lacks the signature or the trailer: % x … % x", whole[:19], whole[len(whole)-2:])
	}
	if err := iotest.TestReader(&messageCopy{ms: ms}, whole); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 7, 64 << 10} {
		var got bytes.Buffer
		r := &messageCopy{ms: ms}
		buf := make([]byte, size)
		for {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), whole) {
			t.Errorf("reads of %d bytes: %d bytes, want %d", size, got.Len(), len(whole))
		}
	}
	empty, _ := io.ReadAll(&messageCopy{})
	if want := copySignature + "\xff\xff"; string(empty) != want {
		t.Errorf("no rows: % x, want % x", empty, want)
	}
}
