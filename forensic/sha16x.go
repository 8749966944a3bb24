package forensic

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

//go:generate python3 ../benchmarks/forensic/gen_sha16x.py

// Sixteen SHA-256 computations at once. Where 512-bit vector work runs at
// full width, sixteen messages in the lanes of ZMM registers (block16, in
// assembly on amd64 with AVX-512) hash about 1.8 times as fast per byte as
// two interleaved SHA-NI messages (sha2x.go). Verification batches records
// for it: a record's chain hash is independent of its neighbours' once their
// claimed curr_hash values are read, and its HMAC inner hash runs over the
// same bytes from another starting state.
//
// sha16xOff turns the sixteen-lane path off where sha16xFast is true (tests
// compare both; verifiers read it when they start).
var sha16xOff atomic.Bool

// sha16Batch is the number of records a verifier hashes together when the
// sixteen-lane path is on.
const sha16Batch = 16

// block16Generic is the portable block16, the reference the assembly is
// tested against: lane l absorbs n[l] blocks at base+off[l].
func block16Generic(st *[8][16]uint32, base *byte, off, n *[16]uint32) {
	for l := 0; l < 16; l++ {
		var h [8]uint32
		for w := range h {
			h[w] = st[w][l]
		}
		for b := uint32(0); b < n[l]; b++ {
			compress1(&h, arenaBlock(base, off[l]+64*b))
		}
		for w := range h {
			st[w][l] = h[w]
		}
	}
}

// block16x2Generic is the portable block16x2: lane l's n[l] blocks at
// base+off[l] are absorbed into both st[0] and st[1].
func block16x2Generic(st *[2][8][16]uint32, base *byte, off, n *[16]uint32) {
	block16Generic(&st[0], base, off, n)
	block16Generic(&st[1], base, off, n)
}

// arenaBlock is the 64-byte block at base+p.
func arenaBlock(base *byte, p uint32) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(base), p)), 64)
}

var zeroBlock [64]byte

// sha16 hashes batches of chain messages (prev || body || '}') with
// block16 and block16x2: each message is copied once into the arena with
// its SHA-256 padding, and the HMAC inner hash of a record reads the same
// blocks but its own last one, a copy in the arena whose padding's length
// counts the 64-byte key block.
type sha16 struct {
	arena     []byte
	st        [8][16]uint32
	off, n    [16]uint32
	pos, tail [sha16Batch]uint32 // each record's message and HMAC last block in the arena
	blocks    [sha16Batch]uint32
	outer     [sha16Batch]uint32 // each record's HMAC outer block
	st2       [2][8][16]uint32   // block16x2: records' hash and HMAC inner states
	wk        [64][16]uint32     // block16x2's scratch: W+K of the current blocks
}

// sha16MaxArena bounds the arena: block offsets are 32-bit.
const sha16MaxArena = 1 << 30

// load copies the batch's messages into the arena and reports false when
// they do not fit (the caller hashes them another way).
func (x *sha16) load(prevs, bodies [][]byte, keyed bool) bool {
	total := 0
	for i := range prevs {
		total += len(prevs[i]) + len(bodies[i]) + 1 + 72 + 128
	}
	if total > sha16MaxArena {
		return false
	}
	if cap(x.arena) < total {
		x.arena = make([]byte, 0, total+total/2)
	}
	a := x.arena[:0]
	for i := range prevs {
		p := len(a)
		a = append(a, prevs[i]...)
		a = append(a, bodies[i]...)
		a = append(a, '}')
		a = sha2Pad(a, len(a)-p)
		x.pos[i], x.blocks[i] = uint32(p), uint32((len(a)-p)/64)
		if keyed {
			t := len(a)
			a = append(a, a[t-64:t]...)
			binary.BigEndian.PutUint64(a[t+56:], binary.BigEndian.Uint64(a[t+56:])+64*8)
			x.tail[i] = uint32(t)
		}
	}
	if keyed {
		for i := range prevs {
			x.outer[i] = uint32(len(a))
			a = append(a, zeroBlock[:]...)
		}
	}
	x.arena = a
	return true
}

// run hashes lanes 0..k-1 from their states in x.st with x.off and x.n;
// lanes k..15 get no block.
func (x *sha16) run(k int) {
	for l := k; l < 16; l++ { // the lane's old state stays; it gets no block
		x.n[l] = 0
	}
	block16(&x.st, &x.arena[0], &x.off, &x.n)
}

// setLane starts lane l at state iv over n blocks from off.
func (x *sha16) setLane(l int, iv *[8]uint32, off, n uint32) {
	for w := range iv {
		x.st[w][l] = iv[w]
	}
	x.off[l], x.n[l] = off, n
}

// laneSum writes lane l's digest.
func (x *sha16) laneSum(l int, out *[32]byte) {
	for w := 0; w < 8; w++ {
		binary.BigEndian.PutUint32(out[4*w:], x.st[w][l])
	}
}

// sumChains puts SHA-256(prevs[i] || bodies[i] || '}') in sums[i] and, with
// in and out (the HMAC key states), the HMAC in macs[i], for at most
// sha16Batch records. It reports false, having done nothing, when the
// messages do not fit the arena.
func (x *sha16) sumChains(sums, macs [][32]byte, prevs, bodies [][]byte, in, out *[8]uint32) bool {
	keyed := in != nil
	if !x.load(prevs, bodies, keyed) {
		return false
	}
	r := len(prevs)
	if !keyed {
		for i := 0; i < r; i++ {
			x.setLane(i, &sha256IV, x.pos[i], x.blocks[i])
		}
		x.run(r)
		for i := 0; i < r; i++ {
			x.laneSum(i, &sums[i])
		}
		return true
	}
	// the blocks before each record's last feed its hash and its HMAC
	// inner hash in one run (block16x2: one message schedule for both);
	// then the last blocks, which differ, as two lanes per record, eight
	// records per run; then the outer blocks of all of them in one run
	for l := 0; l < 16; l++ {
		x.n[l] = 0
		if l < r {
			x.off[l], x.n[l] = x.pos[l], x.blocks[l]-1
		}
		for w := 0; w < 8; w++ {
			x.st2[0][w][l], x.st2[1][w][l] = sha256IV[w], in[w]
		}
	}
	block16x2(&x.st2, &x.arena[0], &x.off, &x.n, &x.wk)
	for i0 := 0; i0 < r; i0 += 8 {
		k := min(8, r-i0)
		for j := 0; j < k; j++ {
			i := i0 + j
			for w := 0; w < 8; w++ {
				x.st[w][2*j], x.st[w][2*j+1] = x.st2[0][w][i], x.st2[1][w][i]
			}
			x.off[2*j], x.n[2*j] = x.pos[i]+64*(x.blocks[i]-1), 1
			x.off[2*j+1], x.n[2*j+1] = x.tail[i], 1
		}
		x.run(2 * k)
		for j := 0; j < k; j++ {
			i := i0 + j
			x.laneSum(2*j, &sums[i])
			var inner [8]uint32
			for w := range inner {
				inner[w] = x.st[w][2*j+1]
			}
			outerBlock((*[64]byte)(x.arena[x.outer[i]:x.outer[i]+64]), &inner)
		}
	}
	for i := 0; i < r; i++ {
		x.setLane(i, out, x.outer[i], 1)
	}
	x.run(r)
	for i := 0; i < r; i++ {
		x.laneSum(i, &macs[i])
	}
	return true
}

// wipe erases the arena and the states.
func (x *sha16) wipe() {
	clear(x.arena[:cap(x.arena)])
	x.st = [8][16]uint32{}
	x.st2 = [2][8][16]uint32{}
	x.wk = [64][16]uint32{}
}
