// Package archtest holds the one import test of the module. It enforces
// the import direction of docs/architecture.md (cmd → gateway, projections,
// tasks → commands, schemas → events, with infra as shared technology) and
// every rule a package's doc states about what it may and must not import,
// from one table: the packages each may import directly, and the ones it
// must not depend on even through another package. A package with a doc.go
// needs its rule in the table, and what a rule allows must be named in that
// doc. It has no code of its own.
package archtest
