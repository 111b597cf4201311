package tasks_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/tasks"
)

func TestForMessage(t *testing.T) {
	ev := &events.MessageSent{
		Envelope:  events.Envelope{ID: "ev1", Room: "r1", User: "alice", Time: 1700},
		MessageID: "m1", Text: "hi @bob @alice @bob @carol", Mentions: []string{"bob", "alice", "bob", "carol"},
	}
	pos := events.Position{Partition: 2, Offset: 7}
	hooks := []tasks.Webhook{{ID: "w1", URL: "http://a/", SealedSecret: "rtsk1:k:a"}, {ID: "w2", URL: "http://b/", SealedSecret: "rtsk1:k:b"}}
	got, err := tasks.ForMessage(ev, pos, hooks)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, tk := range got {
		kinds = append(kinds, string(tk.Kind)+":"+tk.WebhookID+tk.User)
	}
	want := []string{"webhook:w1", "webhook:w2", "notify:bob", "notify:carol"}
	if len(kinds) != len(want) {
		t.Fatalf("tasks %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("tasks %v, want %v", kinds, want)
		}
	}
	var m tasks.Message
	if err := json.Unmarshal(got[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	if m != (tasks.Message{Room: "r1", MessageID: "m1", User: "alice", Text: ev.Text, TS: 1700, Partition: 2, Offset: 7}) {
		t.Errorf("webhook payload %+v", m)
	}
	var n map[string]any
	if err := json.Unmarshal(got[2].Body, &n); err != nil {
		t.Fatal(err)
	}
	if n["type"] != "notification" || n["kind"] != "mention" || n["from"] != "alice" || n["message_id"] != "m1" || n["room"] != "r1" {
		t.Errorf("notification frame %v", n)
	}
	if _, ok := n["user"]; ok {
		t.Errorf("frame carries the recipient: %v", n)
	}
	again, _ := tasks.ForMessage(ev, pos, hooks)
	for i := range got {
		if again[i].ID != got[i].ID {
			t.Errorf("task %d id not deterministic: %s vs %s", i, got[i].ID, again[i].ID)
		}
	}
	if got[0].ID == got[1].ID || got[2].ID == got[3].ID {
		t.Error("distinct targets share an id")
	}
}

func TestIDSeparatesFields(t *testing.T) {
	if tasks.ID("ab", tasks.KindNotify, "c") == tasks.ID("a", tasks.KindNotify, "bc") {
		t.Error("ids collide when a boundary moves")
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"a":1}`)
	// Known value: HMAC-SHA256("k", `{"a":1}`).
	sig := tasks.Sign("k", body)
	if len(sig) != len("sha256=")+64 || sig[:7] != "sha256=" {
		t.Fatalf("signature %q", sig)
	}
	if !tasks.VerifySignature("k", body, sig) {
		t.Error("own signature does not verify")
	}
	if tasks.VerifySignature("other", body, sig) || tasks.VerifySignature("k", []byte(`{"a":2}`), sig) {
		t.Error("signature verifies with the wrong secret or body")
	}
}

func TestParseRetryDelays(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []time.Duration
		bad  bool
	}{
		{in: "", want: tasks.DefaultRetryDelays},
		{in: "100ms, 200ms", want: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{in: "1s,x", bad: true},
		{in: "0s", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := tasks.ParseRetryDelays(tc.in)
			if (err != nil) != tc.bad {
				t.Fatalf("err %v, bad %v", err, tc.bad)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v want %v", got, tc.want)
				}
			}
		})
	}
}
