package forensic

import (
	mrand "math/rand/v2"
	"testing"
)

// BenchmarkEncodeRecord is the canonical encoding of one ~300-byte
// lifecycle record (the parallel stage of the writer's pipeline).
func BenchmarkEncodeRecord(b *testing.B) {
	var e recordEncoder
	rng := mrand.NewChaCha8([32]byte{1})
	fields := benchFields(7)
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _, _ = encodeCanon(buf[:0], &e, rng, "k1", -1, "sanitize_end", fields, 1763859038123456789, nil, 0, true)
	}
	b.SetBytes(int64(len(buf)))
}
