//go:build amd64 && !purego

package forensic

import (
	"math/rand/v2"
	"testing"
)

// TestBlock16AVX512MatchesGeneric runs the assembly and the portable code
// on the same random lanes: random states, block counts from 0 to 5 and
// messages at arbitrary block offsets.
func TestBlock16AVX512MatchesGeneric(t *testing.T) {
	if !sha16xFast {
		t.Skip("no full-width AVX-512 on this CPU: block16 is the portable code")
	}
	r := rand.New(rand.NewPCG(3, 4))
	arena := make([]byte, 16*6*64)
	for iter := 0; iter < 500; iter++ {
		for i := range arena {
			arena[i] = byte(r.Uint32())
		}
		var st [8][16]uint32
		var off, n [16]uint32
		for l := 0; l < 16; l++ {
			for w := 0; w < 8; w++ {
				st[w][l] = r.Uint32()
			}
			n[l] = uint32(r.IntN(6))
			off[l] = uint32(r.IntN(16*6-int(n[l])+1) * 64)
		}
		want := st
		block16Generic(&want, &arena[0], &off, &n)
		got := st
		block16AVX512(&got, &arena[0], &off, &n)
		if got != want {
			t.Fatalf("iter %d: n %v\n got %x\nwant %x", iter, n, got, want)
		}
	}
}

// TestBlock16x2AVX512MatchesGeneric: the shared-schedule assembly against
// the portable code on random states, block counts from 0 to 5 and
// messages at arbitrary block offsets.
func TestBlock16x2AVX512MatchesGeneric(t *testing.T) {
	if !sha16xFast {
		t.Skip("no full-width AVX-512 on this CPU: block16x2 is the portable code")
	}
	r := rand.New(rand.NewPCG(5, 6))
	arena := make([]byte, 16*6*64)
	var wk [64][16]uint32
	for iter := 0; iter < 500; iter++ {
		for i := range arena {
			arena[i] = byte(r.Uint32())
		}
		var st [2][8][16]uint32
		var off, n [16]uint32
		for l := 0; l < 16; l++ {
			for w := 0; w < 8; w++ {
				st[0][w][l], st[1][w][l] = r.Uint32(), r.Uint32()
			}
			n[l] = uint32(r.IntN(6))
			off[l] = uint32(r.IntN(16*6-int(n[l])+1) * 64)
		}
		want := st
		block16x2Generic(&want, &arena[0], &off, &n)
		got := st
		block16x2AVX512(&got, &arena[0], &off, &n, &wk)
		if got != want {
			t.Fatalf("iter %d: n %v: assembly and portable code differ", iter, n)
		}
	}
}
