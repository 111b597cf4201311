package clienterr

import (
	"encoding/json"
	"net/http"
)

// Detail is the "error" object of every HTTP error answer:
// {"error":{"code":"…","message":"…","temporary":false}}.
type Detail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Temporary bool   `json:"temporary"`
}

// WriteHTTP answers code with its status and msg in the error body; extra
// fields (may be nil) are added beside "error".
func WriteHTTP(w http.ResponseWriter, code, msg string, extra map[string]any) {
	c := Lookup(code)
	body := map[string]any{"error": Detail{Code: c.Code, Message: msg, Temporary: c.Temporary}}
	for k, v := range extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(c.Status)
	_ = json.NewEncoder(w).Encode(body) // the client may have gone; nothing to do
}
