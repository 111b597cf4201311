package schemas_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/schemas"
)

// registrar is the write half of a Confluent registry (POST
// /subjects/{s}/versions): there is no real registry on this machine, so
// the test stands in for one at the HTTP level, the way pkg/sr speaks to it.
func registrar(t *testing.T) (*httptest.Server, map[string]int) {
	t.Helper()
	var mu sync.Mutex
	ids := map[string]int{} // schema text → id
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/versions") {
			http.Error(w, `{"error_code":404,"message":"not found"}`, http.StatusNotFound)
			return
		}
		var body struct{ Schema, SchemaType string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || (body.SchemaType != "" && body.SchemaType != "AVRO") || body.Schema == "" {
			http.Error(w, `{"error_code":422,"message":"bad schema"}`, http.StatusUnprocessableEntity)
			return
		}
		mu.Lock()
		id, ok := ids[body.Schema]
		if !ok {
			id = 100 + len(ids)
			ids[body.Schema] = id
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		_ = json.NewEncoder(w).Encode(map[string]int{"id": id})
	}))
	t.Cleanup(srv.Close)
	return srv, ids
}

func TestSyncUsesTheRegistrysIDs(t *testing.T) {
	srv, ids := registrar(t)
	local, err := schemas.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	remote, err := local.Sync(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(local.All()) {
		t.Fatalf("registered %d schemas, want %d", len(ids), len(local.All()))
	}
	again, err := local.Sync(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := schemas.NewCodec(remote)
	ev := &events.MemberJoined{Envelope: events.Envelope{ID: "e", Room: "r", User: "u", Time: 1}}
	b, err := c.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := schemas.SchemaID(b)
	if id < 100 || again.Latest(events.TypeMemberJoined).ID != id {
		t.Fatalf("record names id %d; want the registry's stable id", id)
	}
	if _, err := schemas.NewCodec(local).Decode(b, ""); err == nil {
		t.Fatal("a local-id codec decoded a remote-id record: ids are mixed up")
	}
	if got, err := c.Decode(b, ""); err != nil || got.Env().User != "u" {
		t.Fatalf("decode = %v, %v", got, err)
	}
}

func TestSyncReportsAnUnreachableRegistry(t *testing.T) {
	local, _ := schemas.Embedded()
	_, err := local.Sync(context.Background(), "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("got %v, want an error naming the registry", err)
	}
}
