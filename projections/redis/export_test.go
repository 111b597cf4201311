package redis

import "github.com/rtstack/rtstack/projections"

// SetIDFilterBits gives the store Begin returned an id filter of bits
// bits (tiny ones say "maybe" for most ids: every dedupe is read).
func SetIDFilterBits(s projections.Store, bits int) {
	vs := s.(*versionStore)
	vs.filterOnce.Do(func() { vs.filter = newIDFilter(bits) })
}
