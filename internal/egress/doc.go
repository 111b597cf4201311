// Package egress holds the rules for the requests rtstack sends to addresses
// its users chose (webhook targets): which URLs may be registered, and the
// dial-time guard that refuses loopback and private addresses after DNS
// resolution. The registration path (commands) and the delivery path
// (tasks/worker) both use it, so neither imports the other's role.
//
// It imports only the standard library.
package egress
