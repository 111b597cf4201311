package gateway

import "github.com/rtstack/rtstack/gateway/clienterr"

// Client-facing error codes, sent in error frames: the codes of
// gateway/clienterr (its Table gives each one's meaning), named here for
// callers of the gateway. docs/protocol.md lists them.
const (
	CodeBadJSON              = clienterr.BadJSON
	CodeUnknownType          = clienterr.UnknownType
	CodeInvalid              = clienterr.Invalid
	CodeTextTooLong          = clienterr.TextTooLong
	CodeInvalidUTF8          = clienterr.InvalidUTF8
	CodeBadRoom              = clienterr.BadRoom
	CodeNotMember            = clienterr.NotMember
	CodeAlreadyJoined        = clienterr.AlreadyJoined
	CodeNotAuthor            = clienterr.NotAuthor
	CodeUnknownMessage       = clienterr.UnknownMessage
	CodeRateLimited          = clienterr.RateLimited
	CodeUserRateLimited      = clienterr.UserRateLimited
	CodeTooManyRooms         = clienterr.TooManyRooms
	CodeTooManySubscriptions = clienterr.TooManySubscriptions
	CodeTooManyConnections   = clienterr.TooManyConnections
	CodeUnavailable          = clienterr.Unavailable
	CodeShuttingDown         = clienterr.ShuttingDown
	CodeInternal             = clienterr.Internal
	CodeUnauthorized         = clienterr.Unauthorized
	CodeForbidden            = clienterr.Forbidden
)

// errUnavailable: a dependency (the log, Boards) cannot answer now.
var errUnavailable = clienterr.ErrUnavailable
