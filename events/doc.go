// Package events defines rtstack's domain events: the facts appended to the
// chat.events log and folded by every projection.
//
// It owns the event structs, the envelope every event carries (id, room,
// user, time), the stream key (the room) and log positions. It imports
// nothing outside the standard library: every other package depends on it,
// never the other way round.
package events
