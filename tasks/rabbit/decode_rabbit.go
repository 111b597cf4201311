package rabbit

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/rtstack/rtstack/tasks"
)

// decodeTask reads a task body as json.Unmarshal into a tasks.Task does,
// without its reflection (~12 % of the worker's CPU per task). A fast path
// takes only the bodies it can read exactly as json.Unmarshal would: one
// object whose keys are the Task's own names, exactly spelled, each once;
// string values without escapes, control bytes or invalid UTF-8; a body that
// is an object or an array. Anything else (unknown or differently cased keys,
// nulls, numbers, escapes, duplicates, trailing data, invalid JSON) goes
// to json.Unmarshal, so strictness and errors are exactly the old ones.
func decodeTask(data []byte) (tasks.Task, error) {
	if t, ok := fastDecodeTask(data); ok {
		return t, nil
	}
	var t tasks.Task
	err := json.Unmarshal(data, &t)
	return t, err
}

// fastDecodeTask is decodeTask's fast path; ok is false when data needs
// json.Unmarshal.
func fastDecodeTask(data []byte) (t tasks.Task, ok bool) {
	// One copy backs every string field, as json.Unmarshal's would.
	s := string(data)
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return t, false
	}
	var seen uint16
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return t, skipSpace(s, i+1) == len(s)
	}
	for {
		key, j, ok := plainString(s, i)
		if !ok {
			return t, false
		}
		j = skipSpace(s, j)
		if j >= len(s) || s[j] != ':' {
			return t, false
		}
		j = skipSpace(s, j+1)
		bit, field := taskField(&t, key)
		if bit == 0 || seen&bit != 0 {
			return t, false
		}
		seen |= bit
		if field != nil {
			*field, j, ok = plainString(s, j)
		} else {
			j, ok = rawBody(&t, s, j)
		}
		if !ok {
			return t, false
		}
		j = skipSpace(s, j)
		switch {
		case j < len(s) && s[j] == ',':
			i = skipSpace(s, j+1)
		case j < len(s) && s[j] == '}':
			return t, skipSpace(s, j+1) == len(s)
		default:
			return t, false
		}
	}
}

// taskField names the field of t that key (exactly spelled) decodes into,
// with a bit of its own; bit 0 is a key the fast path does not take. A nil
// field with a bit is Body.
func taskField(t *tasks.Task, key string) (uint16, *string) {
	switch key {
	case "id":
		return 1 << 0, &t.ID
	case "kind":
		return 1 << 1, (*string)(&t.Kind)
	case "event_id":
		return 1 << 2, &t.EventID
	case "room":
		return 1 << 3, &t.Room
	case "webhook_id":
		return 1 << 4, &t.WebhookID
	case "url":
		return 1 << 5, &t.URL
	case "sealed_secret":
		return 1 << 6, &t.SealedSecret
	case "user":
		return 1 << 7, &t.User
	case "body":
		return 1 << 8, nil
	}
	return 0, nil
}

// rawBody sets t.Body to the object or array at s[i:] and returns the index
// after it. The extent is found by matching brackets outside strings, then
// the value is checked with json.Valid: a valid value is self-delimiting,
// so it is the same bytes json.Unmarshal keeps in a json.RawMessage.
func rawBody(t *tasks.Task, s string, i int) (int, bool) {
	if i >= len(s) || (s[i] != '{' && s[i] != '[') {
		return i, false
	}
	depth, inStr := 0, false
	for j := i; j < len(s); j++ {
		c := s[j]
		switch {
		case inStr && c == '\\':
			j++
		case inStr:
			inStr = c != '"'
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				v := []byte(s[i : j+1])
				if !json.Valid(v) {
					return j, false
				}
				t.Body = v
				return j + 1, true
			}
		}
	}
	return len(s), false
}

// plainString reads the JSON string at s[i:] when it needs no unescaping
// and no UTF-8 repair, returning it and the index after its closing quote.
func plainString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", i, false
	}
	ascii := true
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			v := s[i+1 : j]
			if !ascii && !utf8.ValidString(v) {
				return "", j, false
			}
			return v, j + 1, true
		case c == '\\' || c < 0x20:
			return "", j, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", len(s), false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
