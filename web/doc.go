// Package web is rtstack's small single-page chat UI: plain HTML, CSS and
// JavaScript, no build step, compiled into the binary with go:embed and
// served by Handler at "/". It talks to the gateway's /ws and the HTTP API
// like any other client (docs/http.md).
//
// It imports only the standard library.
package web
