package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParseFrame: any client frame is parsed or refused with one of the two
// frame errors, never a panic; every server frame built from what was
// parsed is one line of valid JSON.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"r","since":{"partition":0,"offset":3}}`,
		`{"type":"send","room":"r","text":"hi\nthere","client_id":"c"}`,
		`{"type":"react","room":"r","message_id":"m","emoji":"👍","remove":true}`,
		`{"type":5}`, `[]`, `{`, "{\"type\":\"send\",\"text\":\"\xff\"}", ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b)
		if err != nil {
			if !errors.Is(err, errBadJSON) && !errors.Is(err, errInvalidFrame) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		out := mustJSON(errorFrame{Type: "error", Code: CodeInvalid, Message: fr.Text + fr.Room, Ref: fr.ClientID})
		if bytes.IndexByte(out, '\n') >= 0 || !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("server frame is not one line of JSON: %q", out)
		}
	})
}
