package forensic

import (
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"
)

//go:generate python3 ../benchmarks/forensic/gen_sha2x.py

// Two SHA-256 computations at once. SHA-256 on one core is bound by the
// latency of the SHA-NI round instruction, not its throughput, so two
// independent messages interleaved in one instruction stream (block2, in
// assembly on amd64 with SHA-NI) cost little more than one. The chain
// uses this for a record's curr_hash and its HMAC (the same message from
// two starting states) and, when verifying without a key, for two
// consecutive records (independent once their claimed prev hashes are read).
//
// sha2xFast says whether block2 is the interleaved assembly; otherwise
// callers keep using crypto/sha256 and crypto/hmac (block2Generic is then
// only a correct reference, not a fast one).

// sha2xOff turns the interleaved paths off where sha2xFast is true (tests
// compare both; new writers and verifiers read it when they start hashing).
var sha2xOff atomic.Bool

var sha256IV = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// sha2Lane is one SHA-256 computation: the state after `pre` bytes (a
// multiple of 64) and the message that follows, gathered into buf with its
// padding by load.
type sha2Lane struct {
	st  [8]uint32
	buf []byte
}

// start sets the lane to the state st that has absorbed pre bytes and
// copies the message pieces and the padding into buf.
func (l *sha2Lane) start(st *[8]uint32, pre int, pieces ...[]byte) {
	l.st = *st
	b := l.buf[:0]
	for _, p := range pieces {
		b = append(b, p...)
	}
	l.buf = sha2Pad(b, pre+len(b))
}

// sha2Pad appends the SHA-256 padding for a message of total length n.
func sha2Pad(b []byte, n int) []byte {
	var pad [72]byte
	pad[0] = 0x80
	z := (55 - len(b)%64 + 64) % 64 // zero bytes after 0x80
	binary.BigEndian.PutUint64(pad[1+z:], uint64(n)*8)
	return append(b, pad[:1+z+8]...)
}

// sum writes the digest of the lane's state.
func (l *sha2Lane) sum(out *[32]byte) {
	for i, v := range l.st {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
}

func (m *sha2Mac) block(s *[16]uint32, a, b *byte, n int) {
	if m.generic {
		block2Generic(s, a, b, n)
		return
	}
	block2(s, a, b, n)
}

// run2 compresses both lanes' buffers.
func (m *sha2Mac) run2(a, b *sha2Lane) {
	na, nb := len(a.buf)/64, len(b.buf)/64
	var s [16]uint32
	copy(s[:8], a.st[:])
	copy(s[8:], b.st[:])
	k := min(na, nb)
	if k > 0 {
		m.block(&s, &a.buf[0], &b.buf[0], k)
	}
	copy(a.st[:], s[:8])
	copy(b.st[:], s[8:])
	if na > k {
		m.run1(&a.st, a.buf[k*64:])
	}
	if nb > k {
		m.run1(&b.st, b.buf[k*64:])
	}
}

// run1 compresses whole blocks p into st (the second lane is discarded).
func (m *sha2Mac) run1(st *[8]uint32, p []byte) {
	var s [16]uint32
	copy(s[:8], st[:])
	m.block(&s, &p[0], &p[0], len(p)/64)
	copy(st[:], s[:8])
}

// hmacStates returns the SHA-256 states after the HMAC inner and outer
// key blocks (RFC 2104), so a MAC costs its message plus one block.
func (m *sha2Mac) hmacStates(key []byte) (in, out [8]uint32) {
	if len(key) > 64 {
		s := sha256.Sum256(key)
		key = s[:]
	}
	var ip, op [64]byte
	copy(ip[:], key)
	copy(op[:], key)
	for i := range ip {
		ip[i] ^= 0x36
		op[i] ^= 0x5c
	}
	in, out = sha256IV, sha256IV
	m.run1(&in, ip[:])
	m.run1(&out, op[:])
	return in, out
}

// sha2Mac is a chain hash and HMAC pair over the same message.
type sha2Mac struct {
	in, out [8]uint32 // HMAC key states (zero: no key)
	keyed   bool
	a, b    sha2Lane
	generic bool   // block2Generic instead of block2 (tests)
	x16     *sha16 // sixteen-lane batches (sha16x.go; nil: off)
}

// newSHA2Mac returns a hasher for key (empty: no HMAC) using block2.
func newSHA2Mac(key []byte) *sha2Mac { return newSHA2MacWith(key, false) }

func newSHA2MacWith(key []byte, generic bool) *sha2Mac {
	m := &sha2Mac{generic: generic}
	m.a.buf = make([]byte, 0, 1024)
	m.b.buf = make([]byte, 0, 1024)
	if len(key) > 0 {
		m.in, m.out = m.hmacStates(key)
		m.keyed = true
	}
	if sha16xFast && !sha16xOff.Load() && !generic {
		m.x16 = &sha16{}
	}
	return m
}

// wipe erases the key states and the buffers.
func (m *sha2Mac) wipe() {
	clear(m.in[:])
	clear(m.out[:])
	clear(m.a.st[:])
	clear(m.b.st[:])
	clear(m.a.buf[:cap(m.a.buf)])
	clear(m.b.buf[:cap(m.b.buf)])
	if m.x16 != nil {
		m.x16.wipe()
	}
	m.keyed = false
}

// sumChainBatch puts SHA-256(prevs[i] || bodies[i] || '}') in sums[i] and,
// when keyed, the HMAC in macs[i]: sixteen lanes at a time where m.x16 is
// on, otherwise two records at a time (sumMacChain2, sum2Chain).
func (m *sha2Mac) sumChainBatch(sums, macs [][32]byte, prevs, bodies [][]byte) {
	if m.x16 != nil && len(prevs) > 1 {
		var in, out *[8]uint32
		if m.keyed {
			in, out = &m.in, &m.out
		}
		if m.x16.sumChains(sums, macs, prevs, bodies, in, out) {
			return
		}
	}
	i := 0
	for ; i+1 < len(prevs); i += 2 {
		if m.keyed {
			m.sumMacChain2(&sums[i], &macs[i], &sums[i+1], &macs[i+1], prevs[i], bodies[i], prevs[i+1], bodies[i+1])
		} else {
			m.sum2Chain(&sums[i], &sums[i+1], prevs[i], bodies[i], prevs[i+1], bodies[i+1])
		}
	}
	if i < len(prevs) {
		m.sumMacChain(&sums[i], &macs[i], prevs[i], bodies[i])
	}
}

// sumMac returns SHA-256(pieces) in sum and, when keyed, HMAC(key, pieces)
// in mac; the two run interleaved.
func (m *sha2Mac) sumMac(sum, mac *[32]byte, pieces ...[]byte) {
	m.a.start(&sha256IV, 0, pieces...)
	if !m.keyed {
		m.run1(&m.a.st, m.a.buf)
		m.a.sum(sum)
		return
	}
	// the message is the same for both: only the length in the last block
	// differs (the inner hash has absorbed the 64-byte key block too)
	n := len(m.a.buf) / 64
	var s [16]uint32
	copy(s[:8], sha256IV[:])
	copy(s[8:], m.in[:])
	if n > 1 {
		m.block(&s, &m.a.buf[0], &m.a.buf[0], n-1)
	}
	var last [64]byte
	copy(last[:], m.a.buf[(n-1)*64:])
	binary.BigEndian.PutUint64(last[56:], binary.BigEndian.Uint64(last[56:])+64*8)
	m.block(&s, &m.a.buf[(n-1)*64], &last[0], 1)
	copy(m.a.st[:], s[:8])
	m.a.sum(sum)
	copy(m.b.st[:], s[8:])
	m.finishMac(mac)
}

// sum2 returns SHA-256 of two messages (each given as pieces) interleaved.
func (m *sha2Mac) sum2(sumA, sumB *[32]byte, a, b [][]byte) {
	m.a.start(&sha256IV, 0, a...)
	m.b.start(&sha256IV, 0, b...)
	m.run2(&m.a, &m.b)
	m.a.sum(sumA)
	m.b.sum(sumB)
}

// The chain's messages are prev || body || '}' where prev is usually a
// 64-digit hex hash: exactly one block. The *Chain variants hash the prev
// block and the body's whole blocks in place and copy only the tail.

// tail sets l.buf to the padded tail of prev || body || '}' after the
// first 1+k blocks (pre more bytes were absorbed before the message).
func (l *sha2Lane) tail(body []byte, k, pre int) {
	b := append(l.buf[:0], body[k*64:]...)
	b = append(b, '}')
	l.buf = sha2Pad(b, pre+64+len(body)+1)
}

// sum2Chain is sum2 of prevA || bodyA || '}' and prevB || bodyB || '}'.
func (m *sha2Mac) sum2Chain(sumA, sumB *[32]byte, prevA, bodyA, prevB, bodyB []byte) {
	if len(prevA) != 64 || len(prevB) != 64 {
		m.sum2(sumA, sumB, [][]byte{prevA, bodyA, closeBrace}, [][]byte{prevB, bodyB, closeBrace})
		return
	}
	m.chain2(&sha256IV, prevA, bodyA, prevB, bodyB, 0)
	m.a.sum(sumA)
	m.b.sum(sumB)
}

// sumMacChain is sumMac of prev || body || '}'.
func (m *sha2Mac) sumMacChain(sum, mac *[32]byte, prev, body []byte) {
	if len(prev) != 64 || !m.keyed {
		m.sumMac(sum, mac, prev, body, closeBrace)
		return
	}
	m.chain2(&m.in, prev, body, prev, body, 64)
	m.a.sum(sum)
	m.finishMac(mac)
}

// sumMacChain2 is sumMacChain of two records, A and B: each record's hash
// and HMAC inner hash run interleaved as in sumMacChain, and the two outer
// blocks, which would each run alone, run together. keyed only.
func (m *sha2Mac) sumMacChain2(sumA, macA, sumB, macB *[32]byte, prevA, bodyA, prevB, bodyB []byte) {
	if len(prevA) != 64 || len(prevB) != 64 || !m.keyed {
		m.sumMacChain(sumA, macA, prevA, bodyA)
		m.sumMacChain(sumB, macB, prevB, bodyB)
		return
	}
	m.chain2(&m.in, prevA, bodyA, prevA, bodyA, 64)
	m.a.sum(sumA)
	innerA := m.b.st
	m.chain2(&m.in, prevB, bodyB, prevB, bodyB, 64)
	m.a.sum(sumB)
	var oa, ob [64]byte
	outerBlock(&oa, &innerA)
	outerBlock(&ob, &m.b.st)
	var s [16]uint32
	copy(s[:8], m.out[:])
	copy(s[8:], m.out[:])
	m.block(&s, &oa[0], &ob[0], 1)
	copy(m.a.st[:], s[:8])
	copy(m.b.st[:], s[8:])
	m.a.sum(macA)
	m.b.sum(macB)
}

// chain2 runs lane a from the SHA-256 IV over prevA || bodyA || '}' and lane
// b from ivB (the IV, or the HMAC inner key state, which has hashed offB
// bytes already) over prevB || bodyB || '}', both prevs 64 bytes: the common
// whole blocks two at a time, the tails through run2. The digests are left
// in m.a and m.b.
func (m *sha2Mac) chain2(ivB *[8]uint32, prevA, bodyA, prevB, bodyB []byte, offB int) {
	var s [16]uint32
	copy(s[:8], sha256IV[:])
	copy(s[8:], ivB[:])
	m.block(&s, &prevA[0], &prevB[0], 1)
	k := min(len(bodyA), len(bodyB)) / 64
	if k > 0 {
		m.block(&s, &bodyA[0], &bodyB[0], k)
	}
	copy(m.a.st[:], s[:8])
	copy(m.b.st[:], s[8:])
	m.a.tail(bodyA, k, 0)
	m.b.tail(bodyB, k, offB)
	m.run2(&m.a, &m.b)
}

// finishMac turns the inner state in m.b into the HMAC (one outer block).
func (m *sha2Mac) finishMac(mac *[32]byte) {
	var ob [64]byte
	outerBlock(&ob, &m.b.st)
	m.b.st = m.out
	m.run1(&m.b.st, ob[:])
	m.b.sum(mac)
}

// outerBlock sets ob to the HMAC's outer message block for the inner
// state st: the inner digest and the padding of a 64+32-byte message.
func outerBlock(ob *[64]byte, st *[8]uint32) {
	for i, v := range st {
		binary.BigEndian.PutUint32(ob[4*i:], v)
	}
	ob[32] = 0x80
	binary.BigEndian.PutUint64(ob[56:], (64+32)*8)
}
