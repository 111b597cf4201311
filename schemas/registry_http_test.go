package schemas_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/schemas"
)

func registryServer(t *testing.T) (*schemas.Registry, *httptest.Server) {
	t.Helper()
	reg, err := schemas.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)
	return reg, srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != schemas.RegistryContentType {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	return res.StatusCode, string(b)
}

func TestRegistryHTTP(t *testing.T) {
	reg, srv := registryServer(t)
	sent := reg.Latest(events.TypeMessageSent)
	tests := []struct {
		path   string
		status int
		want   string // JSON, compared semantically
	}{
		{"/subjects/rtstack.events.MessageSent/versions", 200, `[1,2]`},
		{"/subjects/rtstack.events.MemberJoined/versions/1", 200, ``},
		{"/subjects/rtstack.events.MessageSent/versions/latest", 200, ``},
		{"/subjects/rtstack.events.MessageSent/versions/9", 404, `{"error_code":40402,"message":"Version 9 not found."}`},
		{"/subjects/rtstack.events.MessageSent/versions/x", 422, ``},
		{"/subjects/nope/versions", 404, `{"error_code":40401,"message":"Subject 'nope' not found."}`},
		{"/subjects/nope/versions/1", 404, ``},
		{"/schemas/ids/999", 404, `{"error_code":40403,"message":"Schema 999 not found"}`},
		{"/schemas/ids/abc", 404, ``},
		{"/schemas/ids/1/subjects", 200, `["rtstack.events.MessageSent"]`},
		{"/schemas/ids/9/versions", 200, `[{"subject":"rtstack.events.MessageSent","version":2}]`},
		{"/schemas/types", 200, `["AVRO"]`},
		{"/mode", 200, `{"mode":"READONLY"}`},
		{"/elsewhere", 404, ``},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := get(t, srv.URL+tt.path)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			var got any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if tt.status >= 400 {
				m, _ := got.(map[string]any)
				if m["error_code"] == nil || m["message"] == nil {
					t.Fatalf("error body %s lacks error_code/message", body)
				}
			}
			if tt.want != "" {
				var want any
				_ = json.Unmarshal([]byte(tt.want), &want)
				if g, w := mustJSON(got), mustJSON(want); g != w {
					t.Fatalf("body %s, want %s", g, w)
				}
			}
		})
	}

	// The latest version of a subject is the newest .avsc, with its fixed id.
	_, body := get(t, srv.URL+"/subjects/rtstack.events.MessageSent/versions/latest")
	var ss struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
		ID      int    `json:"id"`
		Schema  string `json:"schema"`
	}
	if err := json.Unmarshal([]byte(body), &ss); err != nil {
		t.Fatal(err)
	}
	if ss.Subject != sent.Subject() || ss.Version != sent.Version || ss.ID != sent.ID || ss.Schema != sent.Text {
		t.Fatalf("latest = %+v, want id %d v%d", ss, sent.ID, sent.Version)
	}

	// Writes are refused in the registry's error shape.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/subjects/x/versions", strings.NewReader(`{"schema":"\"int\""}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST status %d, want 405", res.StatusCode)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRegistryFranzClient reads the registry with franz-go's client, as
// kcat-like tools do, and decodes a record of the log with what it got.
func TestRegistryFranzClient(t *testing.T) {
	reg, srv := registryServer(t)
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	subjects, err := cl.Subjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(subjects) != len(events.Types) || !slices.IsSorted(subjects) || !slices.Contains(subjects, "rtstack.events.WebhookRegistered") {
		t.Fatalf("Subjects = %v", subjects)
	}
	for _, s := range reg.All() {
		got, err := cl.SchemaByID(ctx, s.ID)
		if err != nil {
			t.Fatalf("SchemaByID(%d): %v", s.ID, err)
		}
		if got.Schema != s.Text || (got.Type != sr.TypeAvro) {
			t.Fatalf("SchemaByID(%d) = %+v", s.ID, got)
		}
		text, err := cl.SchemaTextByID(ctx, s.ID)
		if err != nil || text != s.Text {
			t.Fatalf("SchemaTextByID(%d) = %q, %v", s.ID, text, err)
		}
		byVersion, err := cl.SchemaByVersion(ctx, s.Subject(), s.Version)
		if err != nil || byVersion.ID != s.ID || byVersion.Version != s.Version {
			t.Fatalf("SchemaByVersion(%s, %d) = %+v, %v", s.Subject(), s.Version, byVersion, err)
		}
	}
	versions, err := cl.SubjectVersions(ctx, "rtstack.events.MessageSent")
	if err != nil || !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("SubjectVersions = %v, %v", versions, err)
	}
	latest, err := cl.SchemaByVersion(ctx, "rtstack.events.MessageSent", -1)
	if err != nil || latest.Version != 2 {
		t.Fatalf("latest = %+v, %v", latest, err)
	}

	_, err = cl.SchemaByID(ctx, 4242)
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != 40403 || re.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown id: %v, want a 40403 ResponseError", err)
	}

	// A record as the log holds it decodes with the schema the registry
	// serves for the id in its header.
	rec, err := schemas.NewCodec(reg).Encode(&events.MessageSent{
		Envelope: events.Envelope{ID: "e1", Room: "lobby", User: "alice", Time: 1700000000000}, MessageID: "m1", Text: "hi @bob", Mentions: []string{"bob"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := schemas.SchemaID(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.SchemaByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := avro.Parse(got.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var decoded map[string]any
	if err := avro.Unmarshal(writer, rec[5:], &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded["text"] != "hi @bob" || decoded["room"] != "lobby" {
		t.Fatalf("decoded with the served schema: %v", decoded)
	}
}
