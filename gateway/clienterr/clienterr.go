// Package clienterr is the one table of the errors a client can see: each
// code with its HTTP status, whether the same request may succeed later,
// and the domain errors that map to it. The WebSocket gateway sends the
// code in error frames (docs/protocol.md), gateway/api in HTTP error bodies
// (docs/http.md); both look codes up here, so a code means the same thing
// on both.
//
// It imports commands, gateway/auth and projections/view for the errors it
// maps, never gateway or gateway/api.
package clienterr

import (
	"context"
	"errors"
	"net/http"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/projections/view"
)

// Client-facing codes. Add a code to Table and to docs/protocol.md (a
// WebSocket code) or docs/http.md (an HTTP-only code) together; a test
// checks the docs.
const (
	BadJSON              = "bad_json"               // the frame or body is not one JSON object
	UnknownType          = "unknown_type"           // no such frame type
	Invalid              = "invalid"                // a field or parameter is missing or malformed
	TextTooLong          = "text_too_long"          // text over 4096 bytes
	InvalidUTF8          = "invalid_utf8"           // the frame or a field is not UTF-8
	BadRoom              = "bad_room"               // empty, over 64 bytes, bad characters
	NotMember            = "not_member"             // the connection has not joined the room
	AlreadyJoined        = "already_joined"         // join of a room the connection is in
	NotAuthor            = "not_author"             // edit/delete of someone else's message
	UnknownMessage       = "unknown_message"        // edit/delete of a message not (yet) known
	RateLimited          = "rate_limited"           // over the connection's frame rate
	UserRateLimited      = "user_rate_limited"      // over the rate of all the user's connections together
	TooManyRooms         = "too_many_rooms"         // join over the rooms a connection may be in
	TooManySubscriptions = "too_many_subscriptions" // subscribe over the channels a connection may have
	Unavailable          = "unavailable"            // the log or a read model is away; retry
	ShuttingDown         = "shutting_down"          // the gateway is stopping; reconnect
	Internal             = "internal"               // anything else (logged)

	Unauthorized       = "unauthorized"         // token missing, malformed, bad or expired
	Forbidden          = "forbidden"            // the token does not allow it (admin, a room outside its rooms claim, another sub) or the origin is refused
	NotFound           = "not_found"            // no such endpoint or resource
	NotReached         = "not_reached"          // ?after= not reached by the projection in time
	RebuildRunning     = "rebuild_running"      // a rebuild is already running
	TooLarge           = "too_large"            // request body over the limit
	NotConfigured      = "not_configured"       // this process runs without that part
	TooManyConnections = "too_many_connections" // a user's WebSocket over USER_CONN_LIMIT, before the upgrade
	UnknownVersion     = "unknown_version"      // ?version= names no version of the projection
	TooManyWebhooks    = "too_many_webhooks"    // the room has WEBHOOKS_PER_ROOM webhooks
	TooManyReactions   = "too_many_reactions"   // the user has the most distinct reactions on that message
)

// Class is what a code means to a client.
type Class struct {
	Code string
	// Status is the HTTP status answered with the code.
	Status int
	// Temporary: the same request may succeed later unchanged.
	Temporary bool
	// errs are the errors (matched with errors.Is, first row first) that
	// map to the code.
	errs []error
}

// Errors that map to a code and have no home of their own in commands or
// auth.
var (
	// ErrUnavailable: a dependency (the log, a read model) cannot answer now.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrBadJSON: a frame or request body is not one JSON object.
	ErrBadJSON = errors.New("malformed JSON")
	// ErrInvalid: a frame field or request parameter is malformed.
	ErrInvalid = errors.New("invalid frame")
	// ErrRebuildRunning: a rebuild was asked for while one runs.
	ErrRebuildRunning = errors.New("a rebuild is already running")
)

// Table lists every client-facing code. The order of rows decides which
// code an error that wraps several gets: the more specific first.
var Table = []Class{
	{Code: TextTooLong, Status: http.StatusBadRequest, errs: []error{commands.ErrTextTooLong}},
	{Code: InvalidUTF8, Status: http.StatusBadRequest, errs: []error{commands.ErrBadUTF8}},
	{Code: BadRoom, Status: http.StatusBadRequest, errs: []error{commands.ErrBadRoom}},
	{Code: Invalid, Status: http.StatusBadRequest, errs: []error{commands.ErrInvalid, commands.ErrBadURL, ErrInvalid}},
	{Code: NotAuthor, Status: http.StatusForbidden, errs: []error{commands.ErrNotAuthor}},
	{Code: UnknownMessage, Status: http.StatusNotFound, Temporary: true, errs: []error{commands.ErrUnknownMessage}},
	{Code: TooManyWebhooks, Status: http.StatusConflict, errs: []error{commands.ErrTooManyWebhooks}},
	{Code: TooManyReactions, Status: http.StatusConflict, errs: []error{commands.ErrTooManyReactions}},
	{Code: Unavailable, Status: http.StatusServiceUnavailable, Temporary: true,
		errs: []error{commands.ErrAppend, commands.ErrReadModel, context.DeadlineExceeded, ErrUnavailable}},
	{Code: BadJSON, Status: http.StatusBadRequest, errs: []error{ErrBadJSON}},
	{Code: Unauthorized, Status: http.StatusUnauthorized, errs: []error{auth.ErrUnauthorized}},
	{Code: RebuildRunning, Status: http.StatusConflict, Temporary: true, errs: []error{ErrRebuildRunning}},
	{Code: UnknownType, Status: http.StatusBadRequest},
	{Code: NotMember, Status: http.StatusForbidden},
	{Code: AlreadyJoined, Status: http.StatusConflict},
	{Code: RateLimited, Status: http.StatusTooManyRequests, Temporary: true},
	{Code: UserRateLimited, Status: http.StatusTooManyRequests, Temporary: true},
	{Code: TooManyRooms, Status: http.StatusConflict},
	{Code: TooManySubscriptions, Status: http.StatusConflict},
	{Code: TooManyConnections, Status: http.StatusTooManyRequests, Temporary: true},
	{Code: ShuttingDown, Status: http.StatusServiceUnavailable, Temporary: true},
	{Code: Forbidden, Status: http.StatusForbidden, errs: []error{auth.ErrForbidden}},
	{Code: NotFound, Status: http.StatusNotFound, errs: []error{commands.ErrUnknownWebhook}},
	{Code: NotReached, Status: http.StatusConflict, Temporary: true},
	{Code: TooLarge, Status: http.StatusRequestEntityTooLarge},
	{Code: NotConfigured, Status: http.StatusNotImplemented},
	{Code: UnknownVersion, Status: http.StatusNotFound, errs: []error{view.ErrUnknownVersion}},
	{Code: Internal, Status: http.StatusInternalServerError},
}

// Of returns the class of err, and false (with Internal) when no row
// matches: an unexpected error, worth an error log.
func Of(err error) (Class, bool) {
	for _, c := range Table {
		for _, e := range c.errs {
			if errors.Is(err, e) {
				return c, true
			}
		}
	}
	return Lookup(Internal), false
}

// Lookup returns the class of code; an unknown code is Internal.
func Lookup(code string) Class {
	for _, c := range Table {
		if c.Code == code {
			return c
		}
	}
	return Lookup(Internal)
}

// Message is the text sent with err's class: internal errors are not
// described to clients, and an unavailable dependency is named only in the
// logs.
func Message(c Class, err error) string {
	switch c.Code {
	case Internal:
		return "internal error"
	case Unavailable:
		return "temporarily unavailable, try again"
	}
	return err.Error()
}
