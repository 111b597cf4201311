package schemas

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/rtstack/rtstack/events"
)

// RegistryContentType is the media type of every registry response.
const RegistryContentType = "application/vnd.schemaregistry.v1+json"

// Confluent Schema Registry error codes used by Handler. Errors that are
// plain HTTP (unknown path, wrong method, bad JSON) carry the status as their
// code, as Confluent's REST layer does.
const (
	codeSubjectNotFound = 40401
	codeVersionNotFound = 40402
	codeSchemaNotFound  = 40403
	codeIncompatible    = 409
	codeInvalidSchema   = 42201
	codeInvalidVersion  = 42202
	codeNotPermitted    = 42205 // a write while the registry is READONLY
)

// Handler serves the Confluent Schema Registry REST API for r's schemas, at
// the root, so Confluent serializers, kcat, Kafka UI and franz-go's sr client
// work against rtstack. Subjects follow RecordNameStrategy (Schema.Subject);
// ids are the fixed ids of the .avsc files.
//
// Reads: GET /subjects, /subjects/{subject}/versions,
// /subjects/{subject}/versions/{version|latest}[/schema|/referencedby],
// /schemas, /schemas/ids/{id}[/schema|/subjects|/versions], /schemas/types,
// /config[/{subject}] and /mode[/{subject}]. Schema lookups: POST /subjects/{subject}
// and /compatibility/subjects/{subject}/versions[/{version}], comparing
// schemas by their Parsing Canonical Form. Registration, POST
// /subjects/{subject}/versions, returns the id of a schema rtstack already
// has and refuses any other (409 if it is incompatible, else 42205): the
// schemas are compiled into the binary, so the mode is READONLY and every
// other write answers 42205. Every answer, errors included, is
// application/vnd.schemaregistry.v1+json; errors have Confluent's shape,
// {"error_code":40401,"message":"…"}.
func (r *Registry) Handler() http.Handler {
	h := &registryHandler{reg: r, subjects: map[string]events.Type{}}
	for _, s := range r.all {
		h.subjects[s.Subject()] = s.Type
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /subjects", h.listSubjects)
	mux.HandleFunc("POST /subjects/{subject}", h.lookup)
	mux.HandleFunc("GET /subjects/{subject}/versions", h.versions)
	mux.HandleFunc("POST /subjects/{subject}/versions", h.register)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}", h.version)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}/schema", h.versionText)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}/referencedby", h.referencedBy)
	mux.HandleFunc("POST /compatibility/subjects/{subject}/versions", h.compatibleWithAll)
	mux.HandleFunc("POST /compatibility/subjects/{subject}/versions/{version}", h.compatibleWithVersion)
	mux.HandleFunc("GET /schemas", h.listSchemas)
	mux.HandleFunc("GET /schemas/types", func(w http.ResponseWriter, _ *http.Request) {
		writeRegistry(w, http.StatusOK, []string{"AVRO"})
	})
	mux.HandleFunc("GET /schemas/ids/{id}", h.byID)
	mux.HandleFunc("GET /schemas/ids/{id}/schema", h.byIDText)
	mux.HandleFunc("GET /schemas/ids/{id}/subjects", h.byIDSubjects)
	mux.HandleFunc("GET /schemas/ids/{id}/versions", h.byIDVersions)
	mux.HandleFunc("GET /config", h.config)
	mux.HandleFunc("GET /config/{subject}", h.config)
	mux.HandleFunc("GET /mode", h.mode)
	mux.HandleFunc("GET /mode/{subject}", h.mode)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodPost:
		default:
			registryError(w, http.StatusUnprocessableEntity, codeNotPermitted,
				"this schema registry is in READONLY mode: rtstack's schemas are compiled into the binary")
			return
		}
		if _, pattern := mux.Handler(req); pattern == "" {
			// Answer in the registry's shape, not the mux's text/plain.
			if routedForOtherMethod(mux, req) {
				registryError(w, http.StatusMethodNotAllowed, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
				return
			}
			registryError(w, http.StatusNotFound, http.StatusNotFound, "HTTP 404 Not Found")
			return
		}
		mux.ServeHTTP(w, req)
	})
}

// routedForOtherMethod reports whether req's path is served for GET or POST.
func routedForOtherMethod(mux *http.ServeMux, req *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := req.Clone(req.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" {
			return true
		}
	}
	return false
}

// RegistryPaths returns the path patterns under which Handler serves, for
// a caller that mounts it on a mux beside other handlers.
func RegistryPaths() []string {
	return []string{"/subjects", "/subjects/", "/schemas", "/schemas/", "/compatibility/", "/config", "/config/", "/mode", "/mode/"}
}

type registryHandler struct {
	reg      *Registry
	subjects map[string]events.Type
}

// subjectSchema is Confluent's SubjectSchema; schemaType is omitted for
// AVRO, as Confluent does.
type subjectSchema struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

func toSubjectSchema(s *Schema) subjectSchema {
	return subjectSchema{Subject: s.Subject(), Version: s.Version, ID: s.ID, Schema: s.Text}
}

func (h *registryHandler) listSubjects(w http.ResponseWriter, _ *http.Request) {
	out := make([]string, 0, len(h.subjects))
	for s := range h.subjects {
		out = append(out, s)
	}
	slices.Sort(out)
	writeRegistry(w, http.StatusOK, out)
}

func (h *registryHandler) subject(w http.ResponseWriter, req *http.Request) (events.Type, bool) {
	name := req.PathValue("subject")
	t, ok := h.subjects[name]
	if !ok {
		registryError(w, http.StatusNotFound, codeSubjectNotFound, fmt.Sprintf("Subject '%s' not found.", name))
	}
	return t, ok
}

func (h *registryHandler) versions(w http.ResponseWriter, req *http.Request) {
	t, ok := h.subject(w, req)
	if !ok {
		return
	}
	writeRegistry(w, http.StatusOK, h.versionNumbers(t))
}

// subjectVersion resolves {subject}/versions/{version}: a number, "latest"
// or -1.
func (h *registryHandler) subjectVersion(w http.ResponseWriter, req *http.Request) (*Schema, bool) {
	t, ok := h.subject(w, req)
	if !ok {
		return nil, false
	}
	v := req.PathValue("version")
	if v == "latest" || v == "-1" {
		return h.reg.Latest(t), true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		registryError(w, http.StatusUnprocessableEntity, codeInvalidVersion,
			fmt.Sprintf("The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", v))
		return nil, false
	}
	s := h.reg.Version(t, n)
	if s == nil {
		registryError(w, http.StatusNotFound, codeVersionNotFound, fmt.Sprintf("Version %d not found.", n))
		return nil, false
	}
	return s, true
}

func (h *registryHandler) version(w http.ResponseWriter, req *http.Request) {
	if s, ok := h.subjectVersion(w, req); ok {
		writeRegistry(w, http.StatusOK, toSubjectSchema(s))
	}
}

func (h *registryHandler) versionText(w http.ResponseWriter, req *http.Request) {
	if s, ok := h.subjectVersion(w, req); ok {
		writeRegistryText(w, s.Text)
	}
}

func (h *registryHandler) referencedBy(w http.ResponseWriter, req *http.Request) {
	if _, ok := h.subjectVersion(w, req); ok {
		writeRegistry(w, http.StatusOK, []int{}) // rtstack's schemas use no references
	}
}

func (h *registryHandler) listSchemas(w http.ResponseWriter, _ *http.Request) {
	out := make([]subjectSchema, 0, len(h.reg.all))
	for _, s := range h.reg.all {
		out = append(out, toSubjectSchema(s))
	}
	writeRegistry(w, http.StatusOK, out)
}

func (h *registryHandler) schemaByID(w http.ResponseWriter, req *http.Request) (*Schema, bool) {
	id, err := strconv.Atoi(req.PathValue("id"))
	var s *Schema
	if err == nil {
		s = h.reg.ByID(id)
	}
	if s == nil {
		registryError(w, http.StatusNotFound, codeSchemaNotFound, fmt.Sprintf("Schema %s not found", req.PathValue("id")))
		return nil, false
	}
	return s, true
}

func (h *registryHandler) byID(w http.ResponseWriter, req *http.Request) {
	if s, ok := h.schemaByID(w, req); ok {
		writeRegistry(w, http.StatusOK, map[string]string{"schema": s.Text})
	}
}

func (h *registryHandler) byIDText(w http.ResponseWriter, req *http.Request) {
	if s, ok := h.schemaByID(w, req); ok {
		writeRegistryText(w, s.Text)
	}
}

func (h *registryHandler) byIDSubjects(w http.ResponseWriter, req *http.Request) {
	if s, ok := h.schemaByID(w, req); ok {
		writeRegistry(w, http.StatusOK, []string{s.Subject()})
	}
}

func (h *registryHandler) byIDVersions(w http.ResponseWriter, req *http.Request) {
	if s, ok := h.schemaByID(w, req); ok {
		writeRegistry(w, http.StatusOK, []map[string]any{{"subject": s.Subject(), "version": s.Version}})
	}
}

// knownOrGlobal reports whether req names no subject (the global setting)
// or a known one, answering 40401 otherwise.
func (h *registryHandler) knownOrGlobal(w http.ResponseWriter, req *http.Request) bool {
	if req.PathValue("subject") == "" {
		return true
	}
	_, ok := h.subject(w, req)
	return ok
}

func (h *registryHandler) config(w http.ResponseWriter, req *http.Request) {
	if !h.knownOrGlobal(w, req) {
		return
	}
	// Every new version must read all older data: tests in this package
	// check each schema against its predecessors.
	writeRegistry(w, http.StatusOK, map[string]string{"compatibilityLevel": "BACKWARD_TRANSITIVE"})
}

func (h *registryHandler) mode(w http.ResponseWriter, req *http.Request) {
	if !h.knownOrGlobal(w, req) {
		return
	}
	writeRegistry(w, http.StatusOK, map[string]string{"mode": "READONLY"})
}

func writeRegistry(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", RegistryContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do
}

// writeRegistryText answers the raw schema text (the /schema endpoints).
func writeRegistryText(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", RegistryContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(text))
}

func registryError(w http.ResponseWriter, status, code int, msg string) {
	writeRegistry(w, status, map[string]any{"error_code": code, "message": msg})
}
