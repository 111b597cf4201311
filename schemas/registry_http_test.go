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
	// Mounted as the gateway mounts it, beside other handlers, so a route
	// outside RegistryPaths fails here.
	mux := http.NewServeMux()
	h := reg.Handler()
	for _, p := range schemas.RegistryPaths() {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "not the registry", http.StatusTeapot) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return reg, srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return call(t, http.MethodGet, url, "")
}

// call sends body (if any) as Confluent clients do and checks that the
// answer has the registry's content type, errors included.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, url, rd)
	req.Header.Set("Content-Type", schemas.RegistryContentType)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != schemas.RegistryContentType {
		t.Fatalf("%s %s: Content-Type %q", method, url, ct)
	}
	return res.StatusCode, string(b)
}

// schemaBody is a Confluent schema request carrying text.
func schemaBody(text string) string {
	b, _ := json.Marshal(map[string]string{"schema": text})
	return string(b)
}

func TestRegistryHTTP(t *testing.T) {
	reg, srv := registryServer(t)
	sent := reg.Latest(events.TypeMessageSent)
	sentV1 := reg.Version(events.TypeMessageSent, 1)
	// The same schema as MessageSent v2, reformatted, without docs and with
	// keys reordered: canonically equal.
	var reformatted map[string]any
	if err := json.Unmarshal([]byte(sent.Text), &reformatted); err != nil {
		t.Fatal(err)
	}
	delete(reformatted, "doc")
	// v3 as someone might try it: a new optional field (compatible) or a
	// changed type (incompatible).
	newer := strings.Replace(sent.Text, `"fields": [`, `"fields": [{"name":"x","type":"string","default":""},`, 1)
	broken := strings.Replace(sent.Text, `"name": "ts",
      "type": "long"`, `"name": "ts",
      "type": "string"`, 1)
	if broken == sent.Text || newer == sent.Text {
		t.Fatal("test schemas not derived: the .avsc layout changed")
	}
	const subj = "/subjects/rtstack.events.MessageSent"
	tests := []struct {
		method, path, body string
		status, code       int    // code: Confluent's error_code, for an error
		want               string // JSON, compared semantically
	}{
		{"GET", subj + "/versions", "", 200, 0, `[1,2]`},
		{"GET", "/subjects/rtstack.events.MemberJoined/versions/1", "", 200, 0, ``},
		{"GET", subj + "/versions/latest", "", 200, 0, ``},
		{"GET", subj + "/versions/9", "", 404, 40402, `{"error_code":40402,"message":"Version 9 not found."}`},
		{"GET", subj + "/versions/x", "", 422, 42202, ``},
		{"GET", subj + "/versions/1/referencedby", "", 200, 0, `[]`},
		{"GET", "/subjects/nope/versions", "", 404, 40401, `{"error_code":40401,"message":"Subject 'nope' not found."}`},
		{"GET", "/subjects/nope/versions/1", "", 404, 40401, ``},
		{"GET", "/schemas/ids/999", "", 404, 40403, `{"error_code":40403,"message":"Schema 999 not found"}`},
		{"GET", "/schemas/ids/abc", "", 404, 40403, ``},
		{"GET", "/schemas/ids/1/subjects", "", 200, 0, `["rtstack.events.MessageSent"]`},
		{"GET", "/schemas/ids/9/versions", "", 200, 0, `[{"subject":"rtstack.events.MessageSent","version":2}]`},
		{"GET", "/schemas/ids/999/versions", "", 404, 40403, `{"error_code":40403,"message":"Schema 999 not found"}`},
		{"GET", "/schemas/types", "", 200, 0, `["AVRO"]`},
		{"GET", "/config", "", 200, 0, `{"compatibilityLevel":"BACKWARD_TRANSITIVE"}`},
		{"GET", "/config/rtstack.events.MessageSent", "", 200, 0, `{"compatibilityLevel":"BACKWARD_TRANSITIVE"}`},
		{"GET", "/config/nope", "", 404, 40401, `{"error_code":40401,"message":"Subject 'nope' not found."}`},
		{"GET", "/mode", "", 200, 0, `{"mode":"READONLY"}`},
		{"GET", "/mode/rtstack.events.MessageSent", "", 200, 0, `{"mode":"READONLY"}`},
		{"GET", "/subjects/a/b/c/d", "", 404, 404, `{"error_code":404,"message":"HTTP 404 Not Found"}`},

		// Lookup: the schema's subject, id and version, compared canonically.
		{"POST", subj, schemaBody(sent.Text), 200, 0, mustJSON(map[string]any{"subject": sent.Subject(), "id": sent.ID, "version": 2, "schema": sent.Text})},
		{"POST", subj, schemaBody(mustJSON(reformatted)), 200, 0, ``},
		{"POST", subj, schemaBody(sentV1.Text), 200, 0, ``},
		{"POST", subj, schemaBody(newer), 404, 40403, `{"error_code":40403,"message":"Schema not found"}`},
		{"POST", "/subjects/rtstack.events.MemberJoined", schemaBody(sent.Text), 404, 40403, `{"error_code":40403,"message":"Schema not found"}`},
		{"POST", "/subjects/chat.events-value", schemaBody(sent.Text), 404, 40401, `{"error_code":40401,"message":"Subject 'chat.events-value' not found."}`},
		{"POST", subj, schemaBody(`{"type":"record"`), 422, 42201, ``},
		{"POST", subj, `{"schema":"\"int\"","schemaType":"PROTOBUF"}`, 422, 42201, ``},
		{"POST", subj, `not json`, 400, 400, ``},
		{"POST", subj, schemaBody(strings.Repeat(" ", 2<<20) + sent.Text), 413, 413, ``},

		// Registration: a schema rtstack has answers its id; any other is
		// refused.
		{"POST", subj + "/versions", schemaBody(sent.Text), 200, 0, `{"id":9}`},
		{"POST", subj + "/versions", schemaBody(mustJSON(reformatted)), 200, 0, `{"id":9}`},
		{"POST", subj + "/versions", schemaBody(sentV1.Text), 200, 0, `{"id":1}`},
		{"POST", subj + "/versions", schemaBody(newer), 422, 42205, ``},
		{"POST", subj + "/versions", schemaBody(broken), 409, 409, ``},
		{"POST", subj + "/versions", schemaBody(`"int"`), 409, 409, ``},
		{"POST", subj + "/versions", schemaBody(`{"type":`), 422, 42201, ``},
		{"POST", "/subjects/chat.events-value/versions", schemaBody(sent.Text), 422, 42205, ``},

		// Compatibility, BACKWARD against one version or all.
		{"POST", "/compatibility" + subj + "/versions/latest", schemaBody(newer), 200, 0, `{"is_compatible":true}`},
		{"POST", "/compatibility" + subj + "/versions/1", schemaBody(broken), 200, 0, `{"is_compatible":false}`},
		{"POST", "/compatibility" + subj + "/versions", schemaBody(sent.Text), 200, 0, `{"is_compatible":true}`},
		{"POST", "/compatibility" + subj + "/versions?verbose=true", schemaBody(`"int"`), 200, 0, ``},
		{"POST", "/compatibility" + subj + "/versions/7", schemaBody(sent.Text), 404, 40402, `{"error_code":40402,"message":"Version 7 not found."}`},
		{"POST", "/compatibility/subjects/nope/versions/latest", schemaBody(sent.Text), 404, 40401, ``},

		// Other writes and wrong methods, in the registry's shape.
		{"PUT", "/config", `{"compatibility":"NONE"}`, 422, 42205, ``},
		{"DELETE", subj, "", 422, 42205, ``},
		{"POST", "/subjects", "{}", 405, 405, `{"error_code":405,"message":"HTTP 405 Method Not Allowed"}`},
		{"GET", "/compatibility" + subj + "/versions/latest", "", 405, 405, ``},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, body := call(t, tt.method, srv.URL+tt.path, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			var got any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if tt.status >= 400 {
				m, _ := got.(map[string]any)
				code, _ := m["error_code"].(float64)
				if msg, _ := m["message"].(string); code == 0 || msg == "" {
					t.Fatalf("error body %s lacks error_code/message", body)
				}
				if int(code) != tt.code {
					t.Fatalf("error_code %v, want %d: %s", code, tt.code, body)
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

// TestRegistryFranzLookupAndRegister speaks to the registry as a serializer
// does, with franz-go's client: look a schema up, register one rtstack has,
// be refused for one it lacks, and check compatibility and configuration.
func TestRegistryFranzLookupAndRegister(t *testing.T) {
	reg, srv := registryServer(t)
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sent := reg.Latest(events.TypeMessageSent)
	subject := sent.Subject()
	if subject != "rtstack.events.MessageSent" {
		t.Fatalf("subject %q: want the record-name strategy's namespace.name", subject)
	}

	for _, s := range reg.All() {
		got, err := cl.LookupSchema(ctx, s.Subject(), sr.Schema{Schema: s.Text})
		if err != nil || got.ID != s.ID || got.Version != s.Version || got.Subject != s.Subject() {
			t.Fatalf("LookupSchema(%s v%d) = %+v, %v", s.Type, s.Version, got, err)
		}
		created, err := cl.CreateSchema(ctx, s.Subject(), sr.Schema{Schema: s.Text, Type: sr.TypeAvro})
		if err != nil || created.ID != s.ID || created.Version != s.Version {
			t.Fatalf("CreateSchema(%s v%d) = %+v, %v", s.Type, s.Version, created, err)
		}
	}

	var re *sr.ResponseError
	_, err = cl.LookupSchema(ctx, subject, sr.Schema{Schema: reg.Latest(events.TypeMemberJoined).Text})
	if !errors.As(err, &re) || re.ErrorCode != 40403 || re.Message != "Schema not found" {
		t.Fatalf("lookup of another subject's schema: %v, want 40403", err)
	}
	incompatible := `{"type":"record","name":"MessageSent","namespace":"rtstack.events","fields":[{"name":"id","type":"int"}]}`
	_, err = cl.RegisterSchema(ctx, subject, sr.Schema{Schema: incompatible}, -1, -1)
	if !errors.As(err, &re) || re.ErrorCode != 409 || re.StatusCode != http.StatusConflict {
		t.Fatalf("register incompatible: %v, want 409", err)
	}
	_, err = cl.RegisterSchema(ctx, subject, sr.Schema{Schema: `{"type":"record","name":"MessageSent"`}, -1, -1)
	if !errors.As(err, &re) || re.ErrorCode != 42201 {
		t.Fatalf("register invalid: %v, want 42201", err)
	}

	check, err := cl.CheckCompatibility(sr.WithParams(ctx, sr.Verbose), subject, -1, sr.Schema{Schema: incompatible})
	if err != nil || check.Is || len(check.Messages) == 0 {
		t.Fatalf("CheckCompatibility(incompatible, latest) = %+v, %v", check, err)
	}
	check, err = cl.CheckCompatibility(ctx, subject, -2, sr.Schema{Schema: sent.Text})
	if err != nil || !check.Is {
		t.Fatalf("CheckCompatibility(v2, all) = %+v, %v", check, err)
	}

	for _, c := range cl.Compatibility(ctx, "", subject) {
		if c.Err != nil || c.Level != sr.CompatBackwardTransitive {
			t.Fatalf("Compatibility(%q) = %+v", c.Subject, c)
		}
	}
	types, err := cl.SupportedTypes(ctx)
	if err != nil || !slices.Equal(types, []sr.SchemaType{sr.TypeAvro}) {
		t.Fatalf("SupportedTypes = %v, %v", types, err)
	}
	usages, err := cl.SchemaUsagesByID(ctx, sent.ID)
	if err != nil || len(usages) != 1 || usages[0].Subject != subject || usages[0].Version != sent.Version {
		t.Fatalf("SchemaUsagesByID(%d) = %+v, %v", sent.ID, usages, err)
	}
	for _, m := range cl.Mode(ctx, "", subject) {
		if m.Err != nil || m.Mode != sr.ModeReadOnly {
			t.Fatalf("Mode(%q) = %+v", m.Subject, m)
		}
	}
}
