package forensic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// sha16Case is a random batch of chain messages: prevs mostly 64-digit
// hashes, bodies of every length around the block and padding boundaries.
func sha16Case(r *rand.Rand, k int) (prevs, bodies [][]byte) {
	for i := 0; i < k; i++ {
		prev := make([]byte, 64)
		if r.IntN(8) == 0 {
			prev = make([]byte, r.IntN(80))
		}
		for j := range prev {
			prev[j] = "0123456789abcdef"[r.IntN(16)]
		}
		body := make([]byte, r.IntN(400))
		for j := range body {
			body[j] = byte(r.Uint32())
		}
		prevs, bodies = append(prevs, prev), append(bodies, body)
	}
	return prevs, bodies
}

// TestSHA16SumChains checks the sixteen-lane chain hashes and HMACs, with
// block16 (the assembly where the CPU has it) and block16Generic, against
// crypto/sha256 and crypto/hmac for batches of every size.
func TestSHA16SumChains(t *testing.T) {
	key := []byte("sixteen-lane test key")
	m := newSHA2MacWith(key, true) // for the HMAC key states only
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		k := 1 + iter%sha16Batch
		prevs, bodies := sha16Case(r, k)
		for _, keyed := range []bool{false, true} {
			var x sha16
			sums, macs := make([][32]byte, k), make([][32]byte, k)
			var in, out *[8]uint32
			if keyed {
				in, out = &m.in, &m.out
			}
			if !x.sumChains(sums, macs, prevs, bodies, in, out) {
				t.Fatal("sumChains refused a small batch")
			}
			for i := 0; i < k; i++ {
				msg := append(append(append([]byte{}, prevs[i]...), bodies[i]...), '}')
				if want := sha256.Sum256(msg); sums[i] != want {
					t.Fatalf("iter %d record %d of %d (len %d): sum %x, want %x", iter, i, k, len(msg), sums[i], want)
				}
				if keyed {
					h := hmac.New(sha256.New, key)
					h.Write(msg)
					if want := h.Sum(nil); !bytes.Equal(macs[i][:], want) {
						t.Fatalf("iter %d record %d of %d (len %d): hmac %x, want %x", iter, i, k, len(msg), macs[i], want)
					}
				}
			}
		}
	}
}

// TestBlock16Generic checks the portable block16 on the FIPS 180-4 "abc"
// vector in every lane, with lanes that get no block keeping their state.
func TestBlock16Generic(t *testing.T) {
	msg := sha2Pad([]byte("abc"), 3)
	var st [8][16]uint32
	var off, n [16]uint32
	for l := 0; l < 16; l++ {
		for w := range sha256IV {
			st[w][l] = sha256IV[w]
		}
		n[l] = uint32(l % 2)
	}
	block16Generic(&st, &msg[0], &off, &n)
	for l := 0; l < 16; l++ {
		var d [32]byte
		(&sha16{st: st}).laneSum(l, &d)
		want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
		if l%2 == 0 {
			want = "6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19"
		}
		if got := hex.EncodeToString(d[:]); got != want {
			t.Errorf("lane %d: %s, want %s", l, got, want)
		}
	}
}
