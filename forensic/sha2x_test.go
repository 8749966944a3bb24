package forensic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// checkSHA2x compares sumMac and sum2 with crypto/sha256 and crypto/hmac.
func checkSHA2x(t testing.TB, generic bool, key, a, b []byte) {
	t.Helper()
	split := len(a) / 3
	m := newSHA2Mac(key)
	if generic {
		m = newSHA2MacWith(key, true)
	}
	var sum, mac [32]byte
	m.sumMac(&sum, &mac, a[:split], a[split:])
	if want := sha256.Sum256(a); sum != want {
		t.Fatalf("sumMac sha256 of %d bytes: got %x want %x", len(a), sum, want)
	}
	if len(key) > 0 {
		h := hmac.New(sha256.New, key)
		h.Write(a)
		if want := h.Sum(nil); !bytes.Equal(mac[:], want) {
			t.Fatalf("sumMac hmac of %d bytes (key %d): got %x want %x", len(a), len(key), mac, want)
		}
	}
	// the chain layout: a 64-byte prev, a body and '}'
	prev := bytes.Repeat([]byte{'e'}, 64)
	want := sha256.Sum256(append(append(append([]byte{}, prev...), a...), '}'))
	m.sumMacChain(&sum, &mac, prev, a)
	if sum != want {
		t.Fatalf("sumMacChain sha256 of 64+%d+1 bytes differs", len(a))
	}
	if len(key) > 0 {
		h := hmac.New(sha256.New, key)
		h.Write(prev)
		h.Write(a)
		h.Write([]byte{'}'})
		if !bytes.Equal(mac[:], h.Sum(nil)) {
			t.Fatalf("sumMacChain hmac of 64+%d+1 bytes differs", len(a))
		}
	}
	if len(key) > 0 {
		// two records with their HMACs, the outer blocks paired; a short
		// prev takes the one-at-a-time path
		for _, prevB := range [][]byte{prev, prev[:63]} {
			var wantSumB, wantMacB, sa, ma, sb, mb [32]byte
			m.sumMacChain(&wantSumB, &wantMacB, prevB, b)
			m.sumMacChain2(&sa, &ma, &sb, &mb, prev, a, prevB, b)
			if sa != sum || ma != mac || sb != wantSumB || mb != wantMacB {
				t.Fatalf("sumMacChain2 of %d and %d bytes (prev %d) differs from sumMacChain", len(a), len(b), len(prevB))
			}
		}
	}
	var ca, cb [32]byte
	m.sum2Chain(&ca, &cb, prev, a, prev[:63], b)
	if ca != want || cb != sha256.Sum256(append(append(append([]byte{}, prev[:63]...), b...), '}')) {
		t.Fatalf("sum2Chain (short prev) of %d and %d bytes differs", len(a), len(b))
	}
	m.sum2Chain(&ca, &cb, prev, a, prev, b)
	if ca != want || cb != sha256.Sum256(append(append(append([]byte{}, prev...), b...), '}')) {
		t.Fatalf("sum2Chain of %d and %d bytes differs", len(a), len(b))
	}
	var sa, sb [32]byte
	m.sum2(&sa, &sb, [][]byte{a}, [][]byte{b[:len(b)/2], b[len(b)/2:]})
	if sa != sha256.Sum256(a) || sb != sha256.Sum256(b) {
		t.Fatalf("sum2 of %d and %d bytes differs from crypto/sha256", len(a), len(b))
	}
}

func TestSHA2xMatchesCrypto(t *testing.T) {
	for _, generic := range []bool{false, true} {
		t.Run(map[bool]string{false: "native", true: "generic"}[generic], func(t *testing.T) {
			msg := make([]byte, 2000)
			for i := range msg {
				msg[i] = byte(i*7 + i>>8)
			}
			for _, key := range [][]byte{nil, []byte("secret"), bytes.Repeat([]byte{'k'}, 64), bytes.Repeat([]byte{'K'}, 100)} {
				for la := 0; la < 300; la += 1 {
					lb := (la*37 + 11) % 700
					checkSHA2x(t, generic, key, msg[:la], msg[3:3+lb])
				}
				checkSHA2x(t, generic, key, msg, msg[:1999])
			}
		})
	}
}

func FuzzSHA2x(f *testing.F) {
	f.Add([]byte("secret"), []byte(`{"a":1}`), []byte("GENESIS"))
	f.Add([]byte{}, bytes.Repeat([]byte{'x'}, 119), bytes.Repeat([]byte{'y'}, 55))
	f.Fuzz(func(t *testing.T, key, a, b []byte) {
		checkSHA2x(t, false, key, a, b)
		checkSHA2x(t, true, key, a, b)
	})
}

// BenchmarkSHA2x: the core's SHA-256 throughput (crypto/sha256 on a long
// message), raw interleaved blocks, and the chain's message shapes (576
// bytes: 10 blocks with padding) hashed the crypto/sha256 way and the
// interleaved way.
func BenchmarkSHA2x(b *testing.B) {
	msg := make([]byte, 576)
	m := newSHA2Mac(testKey)
	var s1, s2 [32]byte
	big := make([]byte, 64<<10)
	b.Run("crypto-sha256-64KiB", func(b *testing.B) {
		b.SetBytes(int64(len(big)))
		for i := 0; i < b.N; i++ {
			s1 = sha256.Sum256(big)
		}
	})
	b.Run("block2-two-lanes-64KiB", func(b *testing.B) {
		var s [16]uint32
		b.SetBytes(2 * int64(len(big)/2))
		for i := 0; i < b.N; i++ {
			m.block(&s, &big[0], &big[len(big)/2], len(big)/128)
		}
	})
	b.Run("crypto-sha256-x2", func(b *testing.B) {
		b.SetBytes(2 * int64(len(msg)))
		for i := 0; i < b.N; i++ {
			s1 = sha256.Sum256(msg)
			s2 = sha256.Sum256(msg[1:])
		}
	})
	b.Run("sum2", func(b *testing.B) {
		b.SetBytes(2 * int64(len(msg)))
		for i := 0; i < b.N; i++ {
			m.sum2(&s1, &s2, [][]byte{msg}, [][]byte{msg[1:]})
		}
	})
	h := hmac.New(sha256.New, testKey)
	b.Run("crypto-sha256+hmac", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for i := 0; i < b.N; i++ {
			s1 = sha256.Sum256(msg)
			h.Reset()
			h.Write(msg)
			h.Sum(s2[:0])
		}
	})
	b.Run("sumMac", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for i := 0; i < b.N; i++ {
			m.sumMac(&s1, &s2, msg)
		}
	})
	b.Run("sumMacChain", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for i := 0; i < b.N; i++ {
			m.sumMacChain(&s1, &s2, msg[:64], msg[64:len(msg)-1])
		}
	})
	b.Run("sum2Chain", func(b *testing.B) {
		b.SetBytes(2 * int64(len(msg)))
		for i := 0; i < b.N; i++ {
			m.sum2Chain(&s1, &s2, msg[:64], msg[64:len(msg)-1], msg[:64], msg[65:])
		}
	})
	// sixteen lanes (sha16x.go): raw blocks, and a verifier's batch of 16
	// records, hash and HMAC each
	b.Run("block16-sixteen-lanes-10-blocks", func(b *testing.B) {
		var st [8][16]uint32
		var off, n [16]uint32
		for l := range off { // back to back, as a verifier's batch
			off[l], n[l] = uint32(l*640), 10
		}
		b.SetBytes(16 * 640)
		for i := 0; i < b.N; i++ {
			block16(&st, &big[0], &off, &n)
		}
	})
	prevs, bodies := make([][]byte, sha16Batch), make([][]byte, sha16Batch)
	for i := range prevs {
		prevs[i], bodies[i] = msg[:64], msg[64:len(msg)-1]
	}
	sums, macs := make([][32]byte, sha16Batch), make([][32]byte, sha16Batch)
	b.Run("sumChains16", func(b *testing.B) {
		var x sha16
		b.SetBytes(sha16Batch * int64(len(msg)))
		for i := 0; i < b.N; i++ {
			x.sumChains(sums, macs, prevs, bodies, &m.in, &m.out)
		}
	})
}
