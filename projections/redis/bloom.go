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

// word returns the word of (room, id) and the bits it sets there: one
// word, so a look costs one cache miss however many bits it tests.
func (f *idFilter) word(room, id string) (*atomic.Uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(room)
	h.WriteByte(0)
	h.WriteString(id)
	s := h.Sum64()
	w := &f.bits[(s>>32)%uint64(len(f.bits))]
	var mask uint64
	for i := range idFilterHashes {
		mask |= 1 << (s >> (6 * i) & 63)
	}
	return w, mask
}

// add records (room, id). Call it before the write that stores the id
// commits, so a reader that finds it missing here cannot miss the write.
func (f *idFilter) add(room, id string) {
	w, mask := f.word(room, id)
	w.Or(mask)
}

// mayHave reports whether (room, id) may have been added.
func (f *idFilter) mayHave(room, id string) bool {
	w, mask := f.word(room, id)
	return w.Load()&mask == mask
}
