package redis

import (
	"hash/maphash"
	"sync/atomic"
)

// idFilterBits is the size of a build's idFilter: 2^26 bits (8 MiB), so
// that up to about 5 million messages the filter says "maybe" for under
// 1 % of the ids it never saw; past that more and more ids are read.
const idFilterBits = 1 << 26

// idFilterHashes is the number of bits each id sets (in one 64-bit word).
const idFilterHashes = 4

// idFilter is a Bloom filter of the (room, message id) pairs a build has
// written into its version's msgs hashes, safe for concurrent use by the
// partitions of the build. "Not seen" is certain: the version began empty
// and only the build writes it, so the message is not in Redis and its
// dedupe read can be skipped; "maybe" means read it. Its memory is fixed
// (idFilterBits), however long the log.
type idFilter struct {
	seed maphash.Seed
	bits []atomic.Uint64
}

func newIDFilter(bits int) *idFilter {
	return &idFilter{seed: maphash.MakeSeed(), bits: make([]atomic.Uint64, max(bits/64, 1))}
}

// roomHash is the part of a (room, id) pair's hash that comes from the
// room: a fold computes it once per room, not once per id.
func (f *idFilter) roomHash(room string) uint64 {
	// Multiplied so that it mixes into every bit the id's hash is cut into.
	return maphash.String(f.seed, room) * 0x9e3779b97f4a7c15
}

// hash is the hash of (room, id), room given by its roomHash.
func (f *idFilter) hash(room uint64, id string) uint64 {
	return maphash.String(f.seed, id) ^ room
}

// word returns the word of a hash and the bits it sets there: one word,
// so a look costs one cache miss however many bits it tests.
func (f *idFilter) word(s uint64) (*atomic.Uint64, uint64) {
	w := &f.bits[(s>>32)%uint64(len(f.bits))]
	var mask uint64
	for i := range idFilterHashes {
		mask |= 1 << (s >> (6 * i) & 63)
	}
	return w, mask
}

// add records the pair of hash s. Call it before the write that stores the
// id commits, so a reader that finds it missing here cannot miss the write.
func (f *idFilter) add(s uint64) {
	w, mask := f.word(s)
	w.Or(mask)
}

// mayHave reports whether the pair of hash s may have been added.
func (f *idFilter) mayHave(s uint64) bool {
	w, mask := f.word(s)
	return w.Load()&mask == mask
}
