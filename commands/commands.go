package commands

// SendMessage posts Text to Room. ClientID is the client's idempotency key:
// the same (Room, User, ClientID) always yields the same message id.
type SendMessage struct {
	Room, User, ClientID, Text string
}

// EditMessage replaces the text of one of User's messages.
type EditMessage struct {
	Room, User, MessageID, Text string
}

// DeleteMessage deletes one of User's messages.
type DeleteMessage struct {
	Room, User, MessageID string
}

// React adds (or, with Remove, takes back) an emoji reaction.
type React struct {
	Room, User, MessageID, Emoji string
	Remove                       bool
}

// JoinRoom makes User a member of Room.
type JoinRoom struct {
	Room, User string
}

// LeaveRoom ends User's membership of Room.
type LeaveRoom struct {
	Room, User string
}

// RegisterWebhook asks for Room's messages to be POSTed to URL, signed with
// Secret. Secret is required; it is sealed before the event is appended.
type RegisterWebhook struct {
	Room, User, URL, Secret string
}

// RemoveWebhook stops the deliveries of one webhook of Room.
type RemoveWebhook struct {
	Room, User, WebhookID string
}
