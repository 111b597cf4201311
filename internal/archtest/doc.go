// Package archtest holds the test that enforces docs/architecture.md's import
// direction: cmd → gateway, projections, tasks → commands, schemas → events,
// with infra as shared technology. It has no code of its own.
package archtest
