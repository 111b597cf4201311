package loadgen

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestSendFrameRoundTrip(t *testing.T) {
	frame := appendSend(nil, "room-1", "42", 123456789, 100)
	var f struct{ Type, Room, ClientID, Text string }
	if err := json.Unmarshal(frame, &struct {
		Type     *string `json:"type"`
		Room     *string `json:"room"`
		ClientID *string `json:"client_id"`
		Text     *string `json:"text"`
	}{&f.Type, &f.Room, &f.ClientID, &f.Text}); err != nil {
		t.Fatalf("%s: %v", frame, err)
	}
	if f.Type != "send" || f.Room != "room-1" || f.ClientID != "42" || len(f.Text) != 100 {
		t.Fatalf("send frame %+v", f)
	}
	// The server echoes the text in a message object of the gateway's shape.
	msg, _ := json.Marshal(struct {
		Type      string `json:"type"`
		Room      string `json:"room"`
		MessageID string `json:"message_id"`
		User      string `json:"user"`
		Text      string `json:"text"`
	}{"message", "room-1", "m1", "u", f.Text})
	if at, ok := messageSentAt(msg); !ok || at != 123456789 {
		t.Errorf("messageSentAt(%s) = %d, %v", msg, at, ok)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		obj    string
		sentAt int64
		ack    string
		code   string
	}{
		{obj: `{"type":"message","room":"r","user":"u","text":"77|xx","ts":1}`, sentAt: 77},
		{obj: `{"type":"message","room":"r","user":"u","text":"someone else's","ts":1}`},
		{obj: `{"type":"joined","room":"r","user":"u","ts":1}`},
		{obj: `{"type":"ack","client_id":"9","message_id":"m","partition":0,"offset":3}`, ack: "9"},
		{obj: `{"type":"error","code":"rate_limited","message":"slow down","ref":"9"}`, code: "rate_limited"},
		{obj: `{"type":"error",broken`, code: "unreadable_error"},
	} {
		at, _ := messageSentAt([]byte(tc.obj))
		ack, _ := ackClientID([]byte(tc.obj))
		e, _ := parseError([]byte(tc.obj))
		if at != tc.sentAt || ack != tc.ack || e.Code != tc.code {
			t.Errorf("%s: sentAt %d ack %q code %q; want %d %q %q", tc.obj, at, ack, e.Code, tc.sentAt, tc.ack, tc.code)
		}
	}
}

func TestForEachObject(t *testing.T) {
	var got []string
	forEachObject([]byte("{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}"), func(obj []byte) { got = append(got, string(obj)) })
	if want := []string{`{"a":1}`, `{"b":2}`, `{"c":3}`}; !slices.Equal(got, want) {
		t.Errorf("objects %q, want %q", got, want)
	}
}
