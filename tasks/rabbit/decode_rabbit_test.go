package rabbit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/rtstack/rtstack/tasks"
)

// decodeCases are task bodies, valid and hostile, on which decodeTask must
// agree with json.Unmarshal; fast marks the ones the fast path must take.
var decodeCases = []struct {
	body string
	fast bool
}{
	{`{"id":"t1","kind":"webhook","event_id":"e1","room":"r1","webhook_id":"w1","url":"http://x/h","sealed_secret":"AbC+/=","body":{"room":"r1","text":"hi"}}`, true},
	{` { "id" : "t1" ,	"kind":"notify","user":"bob","body":[1,{"a":"}]\"\\"}] } ` + "\n", true},
	{`{}`, true},
	{`{"id":"é ü 日本"}`, true},
	{`{"body":{"a":"\u00e9","b":[true,null,-1.5e3]}}`, true},
	{`{"id":"t1","ID":"t2"}`, false},           // case-insensitive match: last wins
	{`{"Id":"t1"}`, false},                     // differently cased key
	{`{"id":"t1","id":"t2"}`, false},           // duplicate key: last wins
	{`{"id":"t1","extra":{"x":[1,2]}}`, false}, // unknown field: ignored
	{`{"id":"t1","Trace":{"a":"b"}}`, false},   // json:"-" field
	{`{"id":"t\"1","url":"a\u0026b"}`, false},  // escapes
	{`{"id":null,"body":null}`, false},         // nulls
	{`{"id":5}`, false},                        // wrong type
	{`{"kind":["webhook"]}`, false},            // wrong type
	{`{"body":"text"}`, false},                 // body not object/array
	{`{"body":12}`, false},
	{`{"body":{"a":1}]}`, false},
	{`{"body":{"a":}}`, false},
	{`{"body":{"a":"x}`, false},
	{`{"id":"t1"} x`, false}, // trailing data
	{`{"id":"t1"}}`, false},
	{`{"id":"t1",}`, false},
	{`{"id" "t1"}`, false},
	{`{"id":"t1"`, false},
	{`{"id":"a` + "\x01" + `"}`, false},        // control byte
	{`{"id":"a` + "\xff\xfe" + `"}`, false},    // invalid UTF-8: replaced
	{`{"id":"` + "\xed\xa0\x80" + `"}`, false}, // a surrogate in UTF-8
	{`not json`, false},
	{``, false},
	{`[]`, false},
	{`null`, false},
	{"\xef\xbb\xbf{}", false}, // a BOM
}

// oldDecode is how DecodeDelivery read a body before the fast path.
func oldDecode(data []byte) (tasks.Task, error) {
	var t tasks.Task
	err := json.Unmarshal(data, &t)
	return t, err
}

func agree(t *testing.T, body []byte) {
	t.Helper()
	want, werr := oldDecode(body)
	got, gerr := decodeTask(body)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) {
		t.Fatalf("%q: error %v, json.Unmarshal %v", body, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded %#v, json.Unmarshal %#v", body, got, want)
	}
}

func TestDecodeTaskAgreesWithUnmarshal(t *testing.T) {
	for _, c := range decodeCases {
		agree(t, []byte(c.body))
		if _, ok := fastDecodeTask([]byte(c.body)); ok != c.fast {
			t.Errorf("%q: fast path %v, want %v", c.body, ok, c.fast)
		}
	}
}

// A task as the reactor publishes it takes the fast path.
func TestDecodeTaskFastPathTakesPublishedTasks(t *testing.T) {
	task := tasks.Task{ID: "t1", Kind: tasks.KindWebhook, EventID: "e1", Room: "r1", WebhookID: "w1",
		URL: "https://example.com/hook?a=1", SealedSecret: "v1.AbC+/=", Body: json.RawMessage(`{"room":"r1","text":"hello"}`)}
	body, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := fastDecodeTask(body)
	if !ok || !reflect.DeepEqual(got, task) {
		t.Fatalf("fast path %v: %#v", ok, got)
	}
}

func FuzzDecodeTask(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) { agree(t, body) })
}

// BenchmarkDecodeTask compares the fast path with json.Unmarshal on a
// webhook task as the reactor publishes it.
func BenchmarkDecodeTask(b *testing.B) {
	body, _ := json.Marshal(tasks.Task{ID: "5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60", Kind: tasks.KindWebhook, EventID: "ev-1", Room: "r1",
		WebhookID: "w1", URL: "http://127.0.0.1:8080/hook", SealedSecret: "v1.QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkw",
		Body: json.RawMessage(`{"room":"r1","message_id":"m-1","user":"alice","text":"hello","ts":1}`)})
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeTask(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := oldDecode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
