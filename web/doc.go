// Package web is rtstack's chat client: plain HTML, CSS and JavaScript
// modules, no build step and no framework, embedded in the binary and served
// by Handler at "/". It talks to the gateway's /ws and the HTTP API like any
// other client (docs/protocol.md, docs/http.md), and to an embedding app
// through postMessage (docs/web.md).
//
// It imports only the standard library.
package web
