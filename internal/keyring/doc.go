// Package keyring seals webhook secrets before they enter the event log and
// opens them where a delivery is signed. A keyring holds several AES-256
// keys, each with an id: the first seals, every one opens, and each sealed
// value names the key that sealed it, so a key is rotated by putting a new
// one first and keeping the old ones until nothing sealed with them is
// needed. The log is never rewritten.
//
// It imports only the standard library.
package keyring
