//go:build amd64 && !purego

package cpuzero

import "github.com/klauspost/cpuid/v2"

// Assembly kernels (zero_amd64.s). The NT variants use regular stores below ntMinBytes and
// end with SFENCE. The any* functions report whether a byte of b is non-zero. None of them
// reads or writes outside b.

//go:noescape
func zeroAVX2(b []byte)

//go:noescape
func zeroAVX2NT(b []byte)

//go:noescape
func zeroAVX512(b []byte)

//go:noescape
func zeroAVX512NT(b []byte)

//go:noescape
func zeroERMS(b []byte)

//go:noescape
func anyAVX2(b []byte) bool

//go:noescape
func anyAVX512(b []byte) bool

var (
	avx2Kernel   = &kernel{name: KernelAVX2, zero: zeroAVX2, zeroNT: zeroAVX2NT, any: anyAVX2}
	avx512Kernel = &kernel{name: KernelAVX512, zero: zeroAVX512, zeroNT: zeroAVX512NT, any: anyAVX512}
)

func init() {
	if cpuid.CPU.Supports(cpuid.ERMS) {
		avx2Kernel.zeroMid = zeroERMS
		avx512Kernel.zeroMid = zeroERMS
	}
}

// availableKernels returns the kernels this CPU and OS can run, best first. cpuid reports
// AVX2 and AVX512F only when XCR0 shows that the OS saves the YMM (and ZMM/opmask) state.
func availableKernels() []*kernel {
	var ks []*kernel
	if cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX2) {
		ks = append(ks, avx512Kernel)
	}
	if cpuid.CPU.Supports(cpuid.AVX2) {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, genericKernel)
}

// defaultNT is the default non-temporal threshold: four times the per-core L2, at most an
// eighth of the L3, clamped to [1 MiB, 64 MiB]; DefaultNTThreshold when cpuid reports no
// cache sizes. Measured (benchmarks/results/cpuzero.md) on a 32 MiB-L3 EPYC (-> 4 MiB) and
// a 300 MiB-L3 Xeon (-> 8 MiB): from there on streaming stores cost at most ~10 % when
// the range is still cached and are about twice as fast when it is not (the usual case for
// a released KV region), and they do not evict the engine's working set.
func defaultNT() int {
	l2, l3 := cpuid.CPU.Cache.L2, cpuid.CPU.Cache.L3
	if l2 <= 0 && l3 <= 0 {
		return DefaultNTThreshold
	}
	t := 64 << 20
	if l2 > 0 {
		t = min(t, 4*l2)
	}
	if l3 > 0 {
		t = min(t, l3/8)
	}
	return max(t, 1<<20)
}

// defaultERMS is the default size from which the vector kernels hand ranges below the
// non-temporal threshold to REP STOSB (0: never):
//
//   - Intel with ERMS: 64 KiB. There the fast-string no-RFO protocol matches vector stores
//     at 64 KiB and beats them once the range spills out of L1/L2 (measured on a Xeon: 31.6
//     vs 25.3 GB/s at 2 MiB), while at 4 KiB its start-up cost makes it slower (119 vs 147).
//   - AMD Zen 5 (family 0x1A) and later with ERMS: the per-core L2 size. Measured on an EPYC
//     of family 0x1A (1 MiB L2): below the L2 size AVX-512 stores are faster (250 vs 164
//     GB/s at 512 KiB), from it on REP STOSB is (130 vs 108 at 2 MiB, 128 vs 101 at 4 MiB;
//     on memory that is not cached 49 vs 36 at every size).
//   - Elsewhere never, e.g. on AMD Zen 4, where it was not faster than AVX-512 stores at any
//     size.
func defaultERMS() int {
	c := &cpuid.CPU
	return ermsFor(c.VendorID, c.Family, c.Supports(cpuid.ERMS), c.Cache.L2)
}

// ermsFor is defaultERMS for a given CPU: vendor, family, ERMS and per-core L2 bytes
// (<= 0 when unknown).
func ermsFor(vendor cpuid.Vendor, family int, erms bool, l2 int) int {
	switch {
	case !erms:
		return 0
	case vendor == cpuid.Intel:
		return 64 << 10
	case vendor == cpuid.AMD && family >= 0x1a:
		if l2 <= 0 {
			return 1 << 20
		}
		return l2
	}
	return 0
}
