package gateway

import (
	"context"
	"errors"

	"github.com/rtstack/rtstack/commands"
)

// Client-facing error codes, sent in error frames. docs/protocol.md lists
// them; add a code there when adding one here.
const (
	CodeBadJSON        = "bad_json"        // the frame is not a JSON object
	CodeUnknownType    = "unknown_type"    // no such frame type
	CodeInvalid        = "invalid"         // a field is missing or malformed
	CodeTextTooLong    = "text_too_long"   // text over 4096 bytes
	CodeInvalidUTF8    = "invalid_utf8"    // the frame or a field is not UTF-8
	CodeBadRoom        = "bad_room"        // empty, over 64 bytes, bad characters
	CodeNotMember      = "not_member"      // the connection has not joined the room
	CodeAlreadyJoined  = "already_joined"  // join of a room the connection is in
	CodeNotAuthor      = "not_author"      // edit/delete of someone else's message
	CodeUnknownMessage = "unknown_message" // edit/delete of a message not (yet) known
	CodeRateLimited    = "rate_limited"    // over the connection's frame rate
	CodeUnavailable    = "unavailable"     // the log or a read model is away; retry
	CodeShuttingDown   = "shutting_down"   // the gateway is stopping; reconnect
	CodeInternal       = "internal"        // anything else (logged)
)

// errorTable maps domain errors to codes, first match wins: the one place
// errors become what clients see.
var errorTable = []struct {
	err  error
	code string
}{
	{commands.ErrTextTooLong, CodeTextTooLong},
	{commands.ErrBadUTF8, CodeInvalidUTF8},
	{commands.ErrBadRoom, CodeBadRoom},
	{commands.ErrInvalid, CodeInvalid},
	{commands.ErrBadURL, CodeInvalid},
	{commands.ErrNotAuthor, CodeNotAuthor},
	{commands.ErrUnknownMessage, CodeUnknownMessage},
	{commands.ErrAppend, CodeUnavailable},
	{context.DeadlineExceeded, CodeUnavailable},
	{errUnavailable, CodeUnavailable},
	{errBadJSON, CodeBadJSON},
	{errInvalidFrame, CodeInvalid},
}

// errUnavailable: a dependency (the log, Boards) cannot answer now.
var errUnavailable = errors.New("temporarily unavailable")

// codeOf returns the client code for err and whether it is an expected
// outcome (false: internal, worth an error log).
func codeOf(err error) (string, bool) {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.code, true
		}
	}
	return CodeInternal, false
}

// clientMessage is the human-readable text sent with a code. Internal errors
// are not described to clients.
func clientMessage(code string, err error) string {
	if code == CodeInternal {
		return "internal error"
	}
	if code == CodeUnavailable {
		return "temporarily unavailable, try again"
	}
	return err.Error()
}
