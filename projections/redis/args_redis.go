package redis

// arena hands out short slices of one array that a fold reuses from chunk
// to chunk, for the arguments of the commands it queues: go-redis keeps a
// command's argument slice as given (Do), so a chunk's writes allocate no
// argument slice each. Strings and numbers go in as pointers into the
// fold's own slices (go-redis writes *string and *int64 as their values),
// which boxes nothing either. A slice handed out stays valid until reset.
type arena[T any] struct {
	buf []T
}

// take returns an empty slice with room for n elements.
func (a *arena[T]) take(n int) []T {
	if len(a.buf)+n > cap(a.buf) {
		// A new array; the old one stays with the commands that use it.
		a.buf = make([]T, 0, max(2*cap(a.buf), n, 1024))
	}
	at := len(a.buf)
	a.buf = a.buf[:at+n]
	return a.buf[at : at : at+n]
}

// one returns a pointer to a new element holding v.
func (a *arena[T]) one(v T) *T {
	s := append(a.take(1), v)
	return &s[0]
}

// reset makes the whole array free again; call it once no command queued
// since the last reset will be written.
func (a *arena[T]) reset() {
	clear(a.buf)
	a.buf = a.buf[:0]
}
