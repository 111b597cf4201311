package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/rtstack/rtstack/events"
)

// maxSchemaRequest bounds a POSTed schema; rtstack's largest is under 2 KiB.
const maxSchemaRequest = 1 << 20

// schemaRequest is Confluent's RegisterSchemaRequest, the body of every
// POST that carries a schema; other fields (metadata, ruleSet, id) are
// ignored.
type schemaRequest struct {
	Schema     string            `json:"schema"`
	SchemaType string            `json:"schemaType"`
	References []json.RawMessage `json:"references"`
}

// readSchema parses the schema of a POST body, answering the error itself
// when there is none to parse.
func readSchema(w http.ResponseWriter, req *http.Request) (avro.Schema, bool) {
	var body schemaRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxSchemaRequest)).Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			registryError(w, http.StatusRequestEntityTooLarge, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body over %d bytes", maxSchemaRequest))
			return nil, false
		}
		registryError(w, http.StatusBadRequest, http.StatusBadRequest, "request body is not a JSON schema request: "+err.Error())
		return nil, false
	}
	invalid := func(msg string) (avro.Schema, bool) {
		registryError(w, http.StatusUnprocessableEntity, codeInvalidSchema, msg)
		return nil, false
	}
	switch {
	case body.SchemaType != "" && !strings.EqualFold(body.SchemaType, "AVRO"):
		return invalid(fmt.Sprintf("Invalid schema type %s: this registry serves AVRO only", body.SchemaType))
	case len(body.References) > 0:
		return invalid("Invalid schema: references are not supported; rtstack's schemas have none")
	case body.Schema == "":
		return invalid("Invalid schema: empty")
	}
	// A cache of its own, so a stranger's schema never shadows a name in the
	// process-wide cache.
	parsed, err := avro.ParseWithCache(body.Schema, "", &avro.SchemaCache{})
	if err != nil {
		return invalid("Invalid schema: " + err.Error())
	}
	return parsed, true
}

// match returns t's version whose Parsing Canonical Form equals parsed's,
// or nil: docs, defaults and key order do not change what bytes a schema
// writes, so a serializer's copy of an .avsc matches it.
func (h *registryHandler) match(t events.Type, parsed avro.Schema) *Schema {
	fp := parsed.Fingerprint()
	for _, s := range h.reg.Versions(t) {
		if s.Avro.Fingerprint() == fp {
			return s
		}
	}
	return nil
}

// lookup answers POST /subjects/{subject}: the subject, id and version of the
// posted schema (what a serializer with auto.register.schemas=false asks).
func (h *registryHandler) lookup(w http.ResponseWriter, req *http.Request) {
	t, ok := h.subject(w, req)
	if !ok {
		return
	}
	parsed, ok := readSchema(w, req)
	if !ok {
		return
	}
	s := h.match(t, parsed)
	if s == nil {
		registryError(w, http.StatusNotFound, codeSchemaNotFound, "Schema not found")
		return
	}
	writeRegistry(w, http.StatusOK, toSubjectSchema(s))
}

// register answers POST /subjects/{subject}/versions: the id of a schema the
// subject already has, else a refusal, since schemas ship with the binary.
func (h *registryHandler) register(w http.ResponseWriter, req *http.Request) {
	parsed, ok := readSchema(w, req)
	if !ok {
		return
	}
	name := req.PathValue("subject")
	t, known := h.subjects[name]
	if !known {
		registryError(w, http.StatusUnprocessableEntity, codeNotPermitted, fmt.Sprintf(
			"Subject '%s' cannot be created: this registry is READONLY and serves record-name subjects (RecordNameStrategy), e.g. '%s'",
			name, h.reg.all[0].Subject()))
		return
	}
	if s := h.match(t, parsed); s != nil {
		writeRegistry(w, http.StatusOK, map[string]int{"id": s.ID})
		return
	}
	if msgs := incompatibilities(parsed, h.reg.Versions(t)); len(msgs) > 0 {
		registryError(w, http.StatusConflict, codeIncompatible, fmt.Sprintf(
			"Schema being registered is incompatible with an earlier schema for subject \"%s\", details: %s", name, strings.Join(msgs, "; ")))
		return
	}
	registryError(w, http.StatusUnprocessableEntity, codeNotPermitted, fmt.Sprintf(
		"Subject '%s' is in read-only mode: rtstack registers only the schemas compiled into it (versions %v); a new version ships with a new rtstack build",
		name, h.versionNumbers(t)))
}

// compatibleWithVersion answers POST
// /compatibility/subjects/{subject}/versions/{version}: whether the posted
// schema reads data written with that version (BACKWARD).
func (h *registryHandler) compatibleWithVersion(w http.ResponseWriter, req *http.Request) {
	s, ok := h.subjectVersion(w, req)
	if !ok {
		return
	}
	h.answerCompatibility(w, req, []*Schema{s})
}

// compatibleWithAll answers POST /compatibility/subjects/{subject}/versions:
// the check against every version (BACKWARD_TRANSITIVE, the subjects'
// level).
func (h *registryHandler) compatibleWithAll(w http.ResponseWriter, req *http.Request) {
	t, ok := h.subject(w, req)
	if !ok {
		return
	}
	h.answerCompatibility(w, req, h.reg.Versions(t))
}

func (h *registryHandler) answerCompatibility(w http.ResponseWriter, req *http.Request, against []*Schema) {
	parsed, ok := readSchema(w, req)
	if !ok {
		return
	}
	msgs := incompatibilities(parsed, against)
	out := map[string]any{"is_compatible": len(msgs) == 0}
	if req.URL.Query().Get("verbose") == "true" {
		out["messages"] = append([]string{}, msgs...)
	}
	writeRegistry(w, http.StatusOK, out)
}

// incompatibilities lists why reader cannot read data written with each of
// writers; none means compatible.
func incompatibilities(reader avro.Schema, writers []*Schema) []string {
	compat := avro.NewSchemaCompatibility()
	var msgs []string
	for _, s := range writers {
		if err := compat.Compatible(reader, s.Avro); err != nil {
			msgs = append(msgs, fmt.Sprintf("cannot read version %d: %v", s.Version, err))
		}
	}
	return msgs
}

func (h *registryHandler) versionNumbers(t events.Type) []int {
	var out []int
	for _, s := range h.reg.Versions(t) {
		out = append(out, s.Version)
	}
	return out
}
