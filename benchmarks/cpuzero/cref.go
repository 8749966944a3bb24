package cpuzerobench

/*
#cgo CFLAGS: -O3 -march=native
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// Called through a volatile pointer so that the compiler can neither drop nor merge the
// repeated memsets of the same buffer: each iteration is a real call into glibc's memset
// (its ifunc-selected AVX2/AVX-512/ERMS variant).
static void *(*volatile kvh_memset_fn)(void *, int, size_t) = memset;

static void kvh_memset_loop(void *p, size_t n, long iters) {
	for (long i = 0; i < iters; i++) {
		kvh_memset_fn(p, 0, n);
	}
}

typedef uint64_t __attribute__((may_alias)) kvh_u64a;

// The reference verifier: a plain OR-reduce that GCC auto-vectorizes at -O3 -march=native.
// noipa keeps the call from being hoisted out of the iteration loop.
__attribute__((noipa)) static uint64_t kvh_or_reduce(const void *p, size_t n) {
	const kvh_u64a *w = (const kvh_u64a *)p;
	size_t nw = n / 8;
	uint64_t acc = 0;
	for (size_t i = 0; i < nw; i++) {
		acc |= w[i];
	}
	const unsigned char *b = (const unsigned char *)p + nw * 8;
	for (size_t i = 0; i < n % 8; i++) {
		acc |= b[i];
	}
	return acc;
}

static uint64_t kvh_or_loop(const void *p, size_t n, long iters) {
	uint64_t r = 0;
	for (long i = 0; i < iters; i++) {
		r |= kvh_or_reduce(p, n);
		__asm__ volatile("" ::: "memory");
	}
	return r;
}
*/
import "C"

import "unsafe"

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// MemsetLoop calls glibc memset(b, 0, len(b)) iters times from one C loop (one cgo call).
func MemsetLoop(b []byte, iters int) {
	C.kvh_memset_loop(ptr(b), C.size_t(len(b)), C.long(iters))
}

// MemsetOnce is one cgo call of memset(b, 0, len(b)): it shows the per-call cgo overhead
// that MemsetLoop amortizes.
func MemsetOnce(b []byte) {
	C.kvh_memset_loop(ptr(b), C.size_t(len(b)), 1)
}

// ORLoop runs the C OR-reduce over b iters times from one C loop and reports whether b
// holds a non-zero byte.
func ORLoop(b []byte, iters int) bool {
	return C.kvh_or_loop(ptr(b), C.size_t(len(b)), C.long(iters)) != 0
}
