package worker_test

import "github.com/rtstack/rtstack/events"

var ev0pos = events.Position{Partition: 0, Offset: 5}

func sent(id, user, text string, mentions ...string) *events.MessageSent {
	return &events.MessageSent{
		Envelope:  events.Envelope{ID: id, Room: "r1", User: user, Time: 1000},
		MessageID: "m-" + id, Text: text, Mentions: mentions,
	}
}
