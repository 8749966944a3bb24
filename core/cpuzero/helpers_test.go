package cpuzero

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"
)

// pat returns the never-zero canary byte for position i.
func pat(i int) byte { return byte(i*131+7) | 1 }

// aligned64 returns a slice of n bytes outside the Go heap whose first byte is 64-byte
// aligned.
func aligned64(n int) []byte { return align64(testMem(n+64), n) }

// heapAligned64 is aligned64 on the Go heap (for the fuzz target, which allocates often).
func heapAligned64(n int) []byte { return align64(make([]byte, n+64), n) }

func align64(b []byte, n int) []byte {
	a := int(-uintptr(unsafe.Pointer(&b[0])) & 63)
	return b[a : a+n : a+n]
}

// canaryBuf is a 64-byte aligned buffer with a never-zero reference pattern.
type canaryBuf struct {
	buf, ref, zeros []byte
}

func newCanaryBuf(n int) *canaryBuf {
	c := &canaryBuf{buf: aligned64(n), ref: testMem(n), zeros: testMem(n)}
	for i := range c.ref {
		c.ref[i] = pat(i)
	}
	return c
}

// reset restores the canary pattern on buf[:n].
func (c *canaryBuf) reset(n int) { copy(c.buf[:n], c.ref[:n]) }

// check asserts that buf[lo:hi] is zero and buf[:lo], buf[hi:end] still hold the pattern.
func (c *canaryBuf) check(t *testing.T, what string, lo, hi, end int) bool {
	if msg := c.problem(lo, hi, end); msg != "" {
		t.Errorf("%s: %s", what, msg)
		return false
	}
	return true
}

// problem describes what is wrong with the range and its canaries, "" if nothing.
func (c *canaryBuf) problem(lo, hi, end int) string {
	if !bytes.Equal(c.buf[lo:hi], c.zeros[:hi-lo]) {
		i := lo
		for c.buf[i] == 0 {
			i++
		}
		return fmt.Sprintf("byte %d of the range [%d,%d) not zeroed (0x%02x)", i-lo, lo, hi, c.buf[i])
	}
	if !bytes.Equal(c.buf[:lo], c.ref[:lo]) {
		return fmt.Sprintf("guard bytes before the range [%d,%d) changed", lo, hi)
	}
	if !bytes.Equal(c.buf[hi:end], c.ref[hi:end]) {
		return fmt.Sprintf("guard bytes after the range [%d,%d) changed", lo, hi)
	}
	return ""
}

// mode is one zeroing entry point of a kernel.
type mode struct {
	name string
	f    func([]byte)
}

func kernelModes(k *kernel) []mode {
	ms := []mode{{k.name + "/regular", k.zero}, {k.name + "/nt", k.zeroNT}}
	if k.zeroMid != nil {
		ms = append(ms, mode{k.name + "/erms", k.zeroMid})
	}
	return ms
}
