package schemas_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/schemas"
)

// nodeDir holds the pinned npm client (package.json and its lockfile).
const nodeDir = "testdata/node"

// npmInstalled runs npm ci once if node_modules is missing, and fails the
// test if node or npm is not installed: the interop is the point.
func npmInstalled(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; this test runs @kafkajs/confluent-schema-registry against the registry (Debian: apt-get install -y nodejs npm)", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@kafkajs", "confluent-schema-registry")); err == nil {
		return
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = nodeDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", nodeDir, err, out)
	}
}

// TestRegistryNodeSerializer runs the Confluent serializer most Node
// producers use against the registry: it registers and looks up the
// MessageSent schema from its .avsc, encodes an event that rtstack's codec
// must decode, and decodes a record rtstack encoded.
func TestRegistryNodeSerializer(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	npmInstalled(t, ctx)
	reg, srv := registryServer(t)
	codec := schemas.NewCodec(reg)
	latest := reg.Latest(events.TypeMessageSent)

	ours := &events.MessageSent{
		Envelope:  events.Envelope{ID: "e-go", Room: "lobby", User: "alice", Time: 1700000000123},
		MessageID: "m-go", ClientID: "c-go", Text: "héllo from rtstack @carol", Mentions: []string{"carol"},
	}
	rec, err := codec.Encode(ours)
	if err != nil {
		t.Fatal(err)
	}
	avsc, err := filepath.Abs(filepath.Join("avro", "009-MessageSent-v2.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", "interop.js", srv.URL, avsc, hex.EncodeToString(rec))
	cmd.Dir = nodeDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node interop.js: %v\n%s", err, stderr.String())
	}
	var got struct {
		RegisteredID, LookupID, LatestID int
		EncodedHex                       string
		Decoded                          map[string]any
		Refused                          *struct {
			Status  int
			Message string
		}
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("node output %q: %v", stdout, err)
	}
	if got.RegisteredID != latest.ID || got.LookupID != latest.ID || got.LatestID != latest.ID {
		t.Fatalf("ids registered %d, looked up %d, latest %d; want %d", got.RegisteredID, got.LookupID, got.LatestID, latest.ID)
	}
	if got.Refused == nil || got.Refused.Status != 422 || !strings.Contains(got.Refused.Message, "read-only") {
		t.Fatalf("registering a schema rtstack lacks: %+v, want a 422 read-only refusal", got.Refused)
	}

	// What Node encoded is a record rtstack reads, header and all.
	value, err := hex.DecodeString(got.EncodedHex)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := codec.Decode(value, string(events.TypeMessageSent))
	if err != nil {
		t.Fatalf("rtstack decoding node's record: %v", err)
	}
	want := &events.MessageSent{
		Envelope:  events.Envelope{ID: "e-node", Room: "lobby", User: "nodeuser", Time: 1700000000456},
		MessageID: "m-node", ClientID: "c-node", Text: "hi from node @bob", Mentions: []string{"bob"},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("node's record read as %#v, want %#v", ev, want)
	}

	// What rtstack encoded, Node reads with the registry's schema.
	wantDecoded := map[string]any{
		"id": "e-go", "room": "lobby", "user": "alice", "ts": float64(1700000000123),
		"message_id": "m-go", "client_id": "c-go", "text": "héllo from rtstack @carol", "mentions": []any{"carol"},
	}
	if !reflect.DeepEqual(got.Decoded, wantDecoded) {
		t.Fatalf("node decoded rtstack's record as %v, want %v", got.Decoded, wantDecoded)
	}
}
