package cpuzero

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Kernel names.
const (
	KernelGeneric = "generic"
	KernelAVX2    = "avx2"
	KernelAVX512  = "avx512"
)

// EnvKernel is the environment variable that forces a kernel at initialisation.
const EnvKernel = "KVH_CPU_KERNEL"

const (
	// DefaultNTThreshold is the size at and above which Zero uses non-temporal stores when
	// the L3 size is unknown. See defaultNT for the rule used when it is known (L3/8; 4 MiB
	// on the 32 MiB-L3 development machine, where it was measured: benchmarks/results/cpuzero.md).
	DefaultNTThreshold = 4 << 20
	// DefaultParallelThreshold is the size at and above which Zero and IsZero split the
	// range across runtime.GOMAXPROCS(0) goroutines.
	DefaultParallelThreshold = 16 << 20

	// chunkBytes bounds the work of one assembly call: assembly is not asynchronously
	// preemptible, so a 1 GiB scrub is cut into pieces to keep GC stop-the-world latency low.
	chunkBytes = 1 << 20
	// ntMinBytes is the smallest range the non-temporal kernels stream; below it the head and
	// tail handling dominate and regular stores are used.
	ntMinBytes = 512
	// pageBytes is the alignment of the pieces handed to parallel workers.
	pageBytes = 4096
)

// kernel is one implementation of the primitives.
type kernel struct {
	name    string
	zero    func([]byte) // regular stores
	zeroNT  func([]byte) // non-temporal stores + SFENCE (regular stores below ntMinBytes)
	zeroMid func([]byte) // optional: REP STOSB for [ermsThreshold, ntThreshold)
	any     func([]byte) bool
}

var (
	ntThreshold       atomic.Int64
	parallelThreshold atomic.Int64
	ermsThreshold     atomic.Int64 // 0 = never

	active    *kernel
	usable    []*kernel // best first
	forcedErr error
)

func init() {
	usable = availableKernels()
	active, forcedErr = selectKernel(os.Getenv(EnvKernel), usable)
	ntThreshold.Store(int64(defaultNT()))
	parallelThreshold.Store(DefaultParallelThreshold)
	ermsThreshold.Store(int64(defaultERMS()))
}

// selectKernel picks the kernel named by the KVH_CPU_KERNEL value env among the usable
// kernels (best first). An empty value selects the best; an unknown or unusable value
// selects the best and returns the reason.
func selectKernel(env string, avail []*kernel) (*kernel, error) {
	best := avail[0]
	want := strings.ToLower(strings.TrimSpace(env))
	if want == "" {
		return best, nil
	}
	for _, k := range avail {
		if k.name == want {
			return k, nil
		}
	}
	switch want {
	case KernelGeneric, KernelAVX2, KernelAVX512:
		return best, fmt.Errorf("cpuzero: %s=%q: this CPU/OS cannot run the %s kernel (usable: %s); using %s",
			EnvKernel, env, want, strings.Join(names(avail), ", "), best.name)
	default:
		return best, fmt.Errorf("cpuzero: %s=%q: unknown kernel (want generic, avx2 or avx512); using %s",
			EnvKernel, env, best.name)
	}
}

func names(ks []*kernel) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.name
	}
	return out
}

func lookup(name string) (*kernel, error) {
	for _, k := range usable {
		if k.name == name {
			return k, nil
		}
	}
	switch name {
	case KernelGeneric, KernelAVX2, KernelAVX512:
		return nil, fmt.Errorf("cpuzero: kernel %q is not usable on this CPU (usable: %s)", name, strings.Join(names(usable), ", "))
	}
	return nil, fmt.Errorf("cpuzero: unknown kernel %q (want generic, avx2 or avx512)", name)
}

// Kernel returns the name of the kernel in use: "avx512", "avx2" or "generic".
func Kernel() string { return active.name }

// Kernels returns the kernels usable on this CPU, best first.
func Kernels() []string { return names(usable) }

// ForcedKernelError returns why the kernel requested with KVH_CPU_KERNEL was refused, or
// nil if none was requested or it is in use.
func ForcedKernelError() error { return forcedErr }

// Thresholds returns the non-temporal and parallel thresholds in bytes.
func Thresholds() (ntBytes, parallelBytes int) {
	return int(ntThreshold.Load()), int(parallelThreshold.Load())
}

// SetThresholds sets the size (bytes) at and above which Zero uses non-temporal stores and
// the size at and above which Zero and IsZero use several goroutines. A value <= 0 restores
// that threshold's default. Safe for concurrent use.
func SetThresholds(ntBytes, parallelBytes int) {
	if ntBytes <= 0 {
		ntBytes = defaultNT()
	}
	if parallelBytes <= 0 {
		parallelBytes = DefaultParallelThreshold
	}
	ntThreshold.Store(int64(ntBytes))
	parallelThreshold.Store(int64(parallelBytes))
}

// ERMSThreshold returns the size from which ranges below the non-temporal threshold are
// zeroed with REP STOSB instead of vector stores (0: never). It is non-zero by default only
// on CPUs with ERMS where that was measured to be faster (Intel: 64 KiB; AMD Zen 5 and
// later: the per-core L2 size); the generic kernel never uses it.
func ERMSThreshold() int { return int(ermsThreshold.Load()) }

// SetERMSThreshold sets ERMSThreshold: 0 disables the REP STOSB window, a negative value
// restores the default. Safe for concurrent use.
func SetERMSThreshold(n int) {
	if n < 0 {
		n = defaultERMS()
	}
	ermsThreshold.Store(int64(n))
}

// Ptr turns an address received from C into an unsafe.Pointer. It converts through memory
// so that go vet's unsafeptr check stays clean; the caller guarantees that addr points to
// memory that is not managed by the Go garbage collector and stays mapped while used.
// Build a slice over it with unsafe.Slice((*byte)(Ptr(addr)), n).
func Ptr(addr uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}

// Zero overwrites b with zeros using the selected kernel.
func Zero(b []byte) {
	// Fast path for the common small range: one regular-store kernel call.
	if n := int64(len(b)); n <= chunkBytes && n < ntThreshold.Load() && n < parallelThreshold.Load() &&
		(n < ermsThreshold.Load() || ermsThreshold.Load() == 0) {
		active.zero(b)
		return
	}
	zeroWith(active, b)
}

// ZeroStream overwrites b with zeros using non-temporal stores (followed by SFENCE) from
// 512 bytes on, whatever the non-temporal threshold: for memory that is not read back soon,
// such as a pool region verified by sampling, where regular stores would first read every
// cache line of the old contents from memory (read-for-ownership). Ranges at or above the
// parallel threshold are split across goroutines like Zero.
func ZeroStream(b []byte) {
	n := len(b)
	if n < ntMinBytes {
		active.zero(b)
		return
	}
	if int64(n) >= parallelThreshold.Load() {
		if parts := split(b); len(parts) > 1 {
			parallel(parts, func(p []byte, _ *atomic.Bool) bool { zeroChunks(active.zeroNT, p); return false })
			return
		}
	}
	zeroChunks(active.zeroNT, b)
}

// ZeroWith zeroes b with the named kernel; it fails if the kernel is unknown or not usable
// on this CPU. Meant for tests and benchmarks.
func ZeroWith(kernelName string, b []byte) error {
	k, err := lookup(kernelName)
	if err != nil {
		return err
	}
	zeroWith(k, b)
	return nil
}

// IsZero reports whether every byte of b is zero (full read-back).
func IsZero(b []byte) bool {
	if len(b) <= chunkBytes && int64(len(b)) < parallelThreshold.Load() {
		return !active.any(b)
	}
	return !anyWith(active, b)
}

// IsZeroWith is IsZero with the named kernel (tests and benchmarks).
func IsZeroWith(kernelName string, b []byte) (bool, error) {
	k, err := lookup(kernelName)
	if err != nil {
		return false, err
	}
	return !anyWith(k, b), nil
}

// NonZeroBytes returns the number of non-zero bytes of b. The all-zero case runs at IsZero
// speed; the exact count is computed only for the 1 MiB pieces that hold a non-zero byte.
func NonZeroBytes(b []byte) uint64 { return nonZeroWith(active, b) }

// NonZeroBytesWith is NonZeroBytes with the named kernel (tests and benchmarks).
func NonZeroBytesWith(kernelName string, b []byte) (uint64, error) {
	k, err := lookup(kernelName)
	if err != nil {
		return 0, err
	}
	return nonZeroWith(k, b), nil
}

func zeroWith(k *kernel, b []byte) {
	n := len(b)
	if n == 0 {
		return
	}
	f := k.zero
	if int64(n) >= ntThreshold.Load() && n >= ntMinBytes {
		f = k.zeroNT
	} else if e := ermsThreshold.Load(); e > 0 && int64(n) >= e && k.zeroMid != nil {
		f = k.zeroMid
	}
	if int64(n) >= parallelThreshold.Load() {
		if parts := split(b); len(parts) > 1 {
			parallel(parts, func(p []byte, _ *atomic.Bool) bool { zeroChunks(f, p); return false })
			return
		}
	}
	zeroChunks(f, b)
}

// zeroChunks runs f over b in pieces of at most chunkBytes whose inner boundaries are 4 KiB
// aligned, so that the assembly never runs for long without a preemption point.
func zeroChunks(f func([]byte), b []byte) {
	for len(b) > chunkBytes {
		c := chunkBytes - int(uintptr(unsafe.Pointer(&b[0]))&(pageBytes-1))
		f(b[:c:c])
		b = b[c:]
	}
	f(b)
}

// anyWith reports whether b holds a non-zero byte.
func anyWith(k *kernel, b []byte) bool {
	n := len(b)
	if n == 0 {
		return false
	}
	if int64(n) >= parallelThreshold.Load() {
		if parts := split(b); len(parts) > 1 {
			return parallel(parts, func(p []byte, stop *atomic.Bool) bool { return anyChunks(k, p, stop) })
		}
	}
	return anyChunks(k, b, nil)
}

// anyChunks ORs b chunk by chunk and stops at the first non-zero chunk or once stop is set
// (by another worker that found one).
func anyChunks(k *kernel, b []byte, stop *atomic.Bool) bool {
	for len(b) > 0 {
		c := len(b)
		if c > chunkBytes {
			c = chunkBytes - int(uintptr(unsafe.Pointer(&b[0]))&(pageBytes-1))
		}
		if k.any(b[:c:c]) {
			return true
		}
		if stop != nil && stop.Load() {
			return false
		}
		b = b[c:]
	}
	return false
}

func nonZeroWith(k *kernel, b []byte) uint64 {
	if !anyWith(k, b) {
		return 0
	}
	var total uint64
	for len(b) > 0 {
		c := min(len(b), chunkBytes)
		if k.any(b[:c:c]) {
			total += countNonZero(b[:c])
		}
		b = b[c:]
	}
	return total
}

// split cuts b into at most GOMAXPROCS pieces whose inner boundaries are 4 KiB aligned
// addresses. It returns a single piece when b is too small to be worth splitting.
func split(b []byte) [][]byte {
	w := runtime.GOMAXPROCS(0)
	n := len(b)
	if maxW := n / (64 << 10); w > maxW {
		w = maxW
	}
	if w <= 1 {
		return [][]byte{b}
	}
	base := uintptr(unsafe.Pointer(&b[0]))
	per := n / w
	parts := make([][]byte, 0, w)
	start := 0
	for i := 1; i < w; i++ {
		end := int((base+uintptr(i*per))&^(pageBytes-1) - base)
		if end <= start {
			continue
		}
		parts = append(parts, b[start:end:end])
		start = end
	}
	return append(parts, b[start:])
}

// parallel runs f on every part, the last one on the calling goroutine, and reports whether
// any call returned true. The stop flag passed to f is set as soon as one call returns true.
func parallel(parts [][]byte, f func([]byte, *atomic.Bool) bool) bool {
	var (
		wg    sync.WaitGroup
		found atomic.Bool
		fault FaultSlot
	)
	for _, p := range parts[:len(parts)-1] {
		wg.Add(1)
		GoGuarded(&fault, func() {
			if f(p, &found) {
				found.Store(true)
			}
		}, wg.Done)
	}
	if f(parts[len(parts)-1], &found) {
		found.Store(true)
	}
	wg.Wait()
	fault.Raise() // a worker's fault surfaces in the caller's goroutine
	return found.Load()
}
