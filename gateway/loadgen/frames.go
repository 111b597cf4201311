package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The generator reads every delivered object, at millions per second, so it
// recognises the few shapes it needs by their bytes instead of decoding
// JSON: servers put "type" first (the gateway encodes structs, whose field
// order is fixed). Errors are rare and decoded properly.
var (
	prefixMessage = []byte(`{"type":"message"`)
	prefixAck     = []byte(`{"type":"ack"`)
	prefixError   = []byte(`{"type":"error"`)
	keyText       = []byte(`"text":"`)
	keyClientID   = []byte(`"client_id":"`)
)

// textSep ends the send timestamp at the start of a message's text.
const textSep = '|'

// appendText appends a message text of n bytes that starts with sentAt (ns
// on the run's clock).
func appendText(b []byte, sentAt int64, n int) []byte {
	start := len(b)
	b = strconv.AppendInt(b, sentAt, 10)
	b = append(b, textSep)
	for len(b)-start < n {
		b = append(b, 'x')
	}
	return b
}

// appendSend appends a send frame.
func appendSend(b []byte, room, clientID string, sentAt int64, textBytes int) []byte {
	b = append(b, `{"type":"send","room":"`...)
	b = append(b, room...)
	b = append(b, `","client_id":"`...)
	b = append(b, clientID...)
	b = append(b, `","text":"`...)
	b = appendText(b, sentAt, textBytes)
	return append(b, `"}`...)
}

// messageSentAt returns the send time carried by a message object of this
// generator; ok is false for any other object.
func messageSentAt(obj []byte) (sentAt int64, ok bool) {
	if !bytes.HasPrefix(obj, prefixMessage) {
		return 0, false
	}
	i := bytes.Index(obj, keyText)
	if i < 0 {
		return 0, false
	}
	rest := obj[i+len(keyText):]
	end := bytes.IndexByte(rest, textSep)
	if end <= 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return v, err == nil
}

// ackClientID returns the client_id an ack object answers.
func ackClientID(obj []byte) (string, bool) {
	if !bytes.HasPrefix(obj, prefixAck) {
		return "", false
	}
	return stringField(obj, keyClientID)
}

// stringField returns the value of a string field that holds no escapes
// (the generator's own client ids).
func stringField(obj, key []byte) (string, bool) {
	i := bytes.Index(obj, key)
	if i < 0 {
		return "", false
	}
	rest := obj[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return "", false
	}
	return string(rest[:end]), true
}

// errorObject is a server error frame.
type errorObject struct {
	Code string  `json:"code"`
	Ref  *string `json:"ref"`
}

// parseError decodes an error object; ok is false for any other object.
func parseError(obj []byte) (e errorObject, ok bool) {
	if !bytes.HasPrefix(obj, prefixError) {
		return e, false
	}
	if err := json.Unmarshal(obj, &e); err != nil || e.Code == "" {
		e.Code = "unreadable_error"
	}
	return e, true
}

// forEachObject calls fn for each \n-separated object of a frame.
func forEachObject(frame []byte, fn func(obj []byte)) {
	for len(frame) > 0 {
		i := bytes.IndexByte(frame, '\n')
		if i < 0 {
			fn(frame)
			return
		}
		if i > 0 {
			fn(frame[:i])
		}
		frame = frame[i+1:]
	}
}
