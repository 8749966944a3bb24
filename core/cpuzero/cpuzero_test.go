package cpuzero

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const guard = 64

// Every kernel entry point (regular and non-temporal stores) on every length 0..4097 at
// every start offset 0..63 from a 64-byte boundary, with canary bytes on both sides.
func TestKernelsEveryLengthAndOffset(t *testing.T) {
	const maxLen = 4097
	c := newCanaryBuf(guard + 64 + maxLen + guard)
	for _, k := range usable {
		for _, m := range kernelModes(k) {
			t.Run(m.name, func(t *testing.T) {
				for n := 0; n <= maxLen; n++ {
					for off := 0; off < 64; off++ {
						lo, hi := guard+off, guard+off+n
						end := hi + guard
						c.reset(end)
						m.f(c.buf[lo:hi:hi])
						if msg := c.problem(lo, hi, end); msg != "" {
							t.Fatalf("%s failed at length %d offset %d: %s", m.name, n, off, msg)
						}
					}
				}
			})
		}
	}
}

// The public entry points route to the non-temporal kernels above a (lowered) threshold
// and stay inside the range.
func TestZeroWithThresholds(t *testing.T) {
	t.Cleanup(func() { SetThresholds(0, 0); SetERMSThreshold(-1) })
	c := newCanaryBuf(guard + 64 + 70000 + guard)
	lengths := []int{0, 1, 31, 511, 512, 513, 1000, 4095, 4096, 4097, 65537, 70000}
	for _, th := range [][2]int{{1, 0}, {600, 0}, {1 << 30, 0}, {1 << 30, 100}, {5000, 1}} {
		nt := th[0]
		SetThresholds(nt, 1<<30)
		SetERMSThreshold(th[1])
		for _, name := range Kernels() {
			for _, n := range lengths {
				for _, off := range []int{0, 1, 17, 63} {
					lo, hi := guard+off, guard+off+n
					c.reset(hi + guard)
					require.NoError(t, ZeroWith(name, c.buf[lo:hi:hi]))
					if !c.check(t, name, lo, hi, hi+guard) {
						t.Fatalf("ZeroWith(%s) nt=%d length %d offset %d", name, nt, n, off)
					}
				}
			}
		}
		n := 5000
		c.reset(guard + 3 + n + guard)
		Zero(c.buf[guard+3 : guard+3+n])
		require.True(t, c.check(t, "Zero", guard+3, guard+3+n, guard+3+n+guard))
	}
}

func TestZeroLarge(t *testing.T) {
	t.Cleanup(func() { SetThresholds(0, 0); SetERMSThreshold(-1) })
	n := 3*chunkBytes + 12345 // several chunks, unaligned end
	c := newCanaryBuf(guard + 64 + n + guard)
	for _, th := range [][2]int{{1 << 30, 0}, {1 << 30, 1}, {1, 0}} {
		nt := th[0]
		SetThresholds(nt, 1<<30)
		SetERMSThreshold(th[1])
		for _, name := range Kernels() {
			lo, hi := guard+5, guard+5+n
			c.reset(hi + guard)
			require.NoError(t, ZeroWith(name, c.buf[lo:hi]))
			require.True(t, c.check(t, name, lo, hi, hi+guard), "kernel %s nt threshold %d", name, nt)
		}
	}
}

// A single non-zero byte is found at every position of every length up to 300, for
// every kernel, with never-zero canaries around the range (a read outside it would report
// a zero range as non-zero).
func TestIsZeroSingleByteEveryPosition(t *testing.T) {
	const maxLen = 300
	for _, k := range usable {
		t.Run(k.name, func(t *testing.T) {
			c := newCanaryBuf(guard + 64 + maxLen + guard)
			for n := 0; n <= maxLen; n++ {
				off := (n * 7) % 64
				lo, hi := guard+off, guard+off+n
				c.reset(hi + guard)
				clear(c.buf[lo:hi])
				r := c.buf[lo:hi:hi]
				if anyWith(k, r) || nonZeroWith(k, r) != 0 {
					t.Fatalf("%s: zero range of length %d at offset %d reported non-zero", k.name, n, off)
				}
				for pos := 0; pos < n; pos++ {
					v := []byte{1, 0x80, 0xff, byte(pos) | 1}[pos%4]
					r[pos] = v
					if !anyWith(k, r) {
						t.Fatalf("%s: non-zero byte 0x%02x at %d of length %d (offset %d) missed", k.name, v, pos, n, off)
					}
					if got := nonZeroWith(k, r); got != 1 {
						t.Fatalf("%s: NonZeroBytes = %d, want 1 (byte %d of %d)", k.name, got, pos, n)
					}
					r[pos] = 0
				}
			}
		})
	}
}

func TestIsZeroLargeSampledPositions(t *testing.T) {
	n := 2*chunkBytes + 4099
	for _, k := range usable {
		t.Run(k.name, func(t *testing.T) {
			c := newCanaryBuf(guard + 64 + n + guard)
			lo, hi := guard+3, guard+3+n
			c.reset(hi + guard)
			clear(c.buf[lo:hi])
			r := c.buf[lo:hi:hi]
			require.False(t, anyWith(k, r))
			positions := []int{0, 1, 63, 64, n - 65, n - 2, n - 1}
			// around the 1 MiB chunk boundaries (chunks end on 4 KiB aligned addresses)
			for _, p := range []int{chunkBytes, 2 * chunkBytes} {
				b := p - int(uintptr(unsafe.Pointer(&r[0]))&(pageBytes-1))
				positions = append(positions, b-1, b, b+1)
			}
			draws := 60
			if k == genericKernel {
				draws = 4 // Go code, instrumented under -race
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for range draws {
				positions = append(positions, rng.IntN(n))
			}
			for _, p := range positions {
				r[p] = 0x10
				require.True(t, anyWith(k, r), "byte %d of %d", p, n)
				require.Equal(t, uint64(1), nonZeroWith(k, r), "byte %d of %d", p, n)
				r[p] = 0
			}
		})
	}
}

func TestNonZeroBytesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 8, 9, 100, 4096, 100003, chunkBytes + 77} {
		b := make([]byte, n)
		want := uint64(0)
		for i := range b {
			if rng.IntN(5) == 0 {
				b[i] = byte(rng.IntN(255) + 1)
				want++
			}
		}
		for _, name := range Kernels() {
			got, err := NonZeroBytesWith(name, b)
			require.NoError(t, err)
			assert.Equal(t, want, got, "kernel %s length %d", name, n)
			z, err := IsZeroWith(name, b)
			require.NoError(t, err)
			assert.Equal(t, want == 0, z)
		}
		assert.Equal(t, want, NonZeroBytes(b))
		assert.Equal(t, want == 0, IsZero(b))
	}
}

func TestNonZeroInWord(t *testing.T) {
	for i := 0; i < 256; i++ {
		for j := 0; j < 8; j++ {
			w := uint64(i) << (8 * j)
			want := 0
			if i != 0 {
				want = 1
			}
			require.Equal(t, want, nonZeroInWord(w), "byte 0x%02x at %d", i, j)
			others := uint64(0x0101010101010101) &^ (uint64(0xff) << (8 * j))
			require.Equal(t, want+7, nonZeroInWord(others|w), "byte 0x%02x at %d among ones", i, j)
		}
	}
}

func TestSplit(t *testing.T) {
	old := runtime.GOMAXPROCS(5)
	defer runtime.GOMAXPROCS(old)
	buf := make([]byte, 3<<20+4096)
	for _, off := range []int{0, 1, 4095} {
		b := buf[off : off+3<<20+1]
		parts := split(b)
		require.Len(t, parts, 5)
		total := 0
		for i, p := range parts {
			require.Equal(t, uintptr(unsafe.Pointer(&b[total])), uintptr(unsafe.Pointer(&p[0])), "part %d not contiguous", i)
			if i > 0 {
				require.Zero(t, uintptr(unsafe.Pointer(&p[0]))&(pageBytes-1), "part %d not 4 KiB aligned", i)
			}
			total += len(p)
		}
		require.Equal(t, len(b), total)
	}
	require.Len(t, split(buf[:100<<10]), 1, "a small buffer is not split")
}

// The parallel path (lowered threshold, more workers than cores) zeroes exactly the range
// and finds a non-zero byte in any worker's piece.
func TestParallel(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)
	t.Cleanup(func() { SetThresholds(0, 0); SetERMSThreshold(-1) })
	n := 1<<20 + 4099
	c := newCanaryBuf(guard + 64 + n + guard)
	for _, th := range [][2]int{{1 << 30, 0}, {1 << 30, 1}, {1, 0}} {
		nt := th[0]
		SetThresholds(nt, 256<<10)
		SetERMSThreshold(th[1])
		for _, name := range Kernels() {
			lo, hi := guard+3, guard+3+n
			c.reset(hi + guard)
			r := c.buf[lo:hi:hi]
			require.Greater(t, len(split(r)), 1)
			require.NoError(t, ZeroWith(name, r))
			require.True(t, c.check(t, name, lo, hi, hi+guard))
			for _, p := range []int{0, n / 4, n/2 + 1, 3 * n / 4, n - 1} {
				r[p] = 0xee
				z, err := IsZeroWith(name, r)
				require.NoError(t, err)
				require.False(t, z, "kernel %s byte %d", name, p)
				r[p] = 0
			}
			z, err := IsZeroWith(name, r)
			require.NoError(t, err)
			require.True(t, z)
		}
	}
}

func TestUnknownKernel(t *testing.T) {
	err := ZeroWith("sse9", make([]byte, 8))
	require.ErrorContains(t, err, `unknown kernel "sse9"`)
	_, err = IsZeroWith("", nil)
	require.Error(t, err)
	_, err = NonZeroBytesWith("AVX2", nil)
	require.Error(t, err)
	for _, name := range []string{KernelGeneric, KernelAVX2, KernelAVX512} {
		usableHere := false
		for _, u := range Kernels() {
			usableHere = usableHere || u == name
		}
		err := ZeroWith(name, make([]byte, 8))
		if usableHere {
			require.NoError(t, err)
		} else {
			require.ErrorContains(t, err, "not usable on this CPU")
		}
	}
}

func TestKernelsAndThresholds(t *testing.T) {
	ks := Kernels()
	require.Equal(t, KernelGeneric, ks[len(ks)-1], "generic is always usable and last")
	if ForcedKernelError() == nil && strings.TrimSpace(getenvKernel()) == "" {
		require.Equal(t, ks[0], Kernel(), "the best kernel is selected by default")
	}
	t.Cleanup(func() { SetThresholds(0, 0) })
	SetThresholds(123, 456)
	nt, par := Thresholds()
	require.Equal(t, 123, nt)
	require.Equal(t, 456, par)
	SetThresholds(0, -1)
	nt, par = Thresholds()
	require.Equal(t, defaultNT(), nt)
	require.Equal(t, DefaultParallelThreshold, par)
	t.Cleanup(func() { SetERMSThreshold(-1) })
	SetERMSThreshold(0)
	require.Zero(t, ERMSThreshold())
	SetERMSThreshold(4096)
	require.Equal(t, 4096, ERMSThreshold())
	SetERMSThreshold(-1)
	require.Equal(t, defaultERMS(), ERMSThreshold())
}

func TestPtr(t *testing.T) {
	b := make([]byte, 100)
	for i := range b {
		b[i] = 9
	}
	addr := uintptr(unsafe.Pointer(&b[10]))
	p := Ptr(addr)
	require.Equal(t, unsafe.Pointer(&b[10]), p)
	s := unsafe.Slice((*byte)(p), 50)
	Zero(s)
	require.Equal(t, uint64(50), NonZeroBytes(b))
	require.True(t, IsZero(b[10:60]))
	require.Nil(t, Ptr(0))
	runtime.KeepAlive(b)
}

// FuzzZero compares every kernel (regular and non-temporal stores, and the OR-reduce)
// with the generic one on arbitrary contents, lengths and offsets.
func FuzzZero(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint16(3), uint8(0))
	f.Add(make([]byte, 700), uint16(600), uint8(63))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"), uint16(0), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, n uint16, off uint8) {
		o := int(off % 64)
		l := int(n) % 5000
		size := guard + o + l + guard
		ref := heapAligned64(size)
		for i := range ref {
			ref[i] = byte(i*31) | 1
			if len(data) > 0 {
				ref[i] = data[i%len(data)]
			}
		}
		want := heapAligned64(size)
		copy(want, ref)
		clear(want[guard+o : guard+o+l])
		wantAny := anyGeneric(ref[guard+o : guard+o+l])
		for _, k := range usable {
			for _, m := range kernelModes(k) {
				got := heapAligned64(size)
				copy(got, ref)
				m.f(got[guard+o : guard+o+l : guard+o+l])
				if string(got) != string(want) {
					t.Fatalf("%s differs from generic (length %d offset %d)", m.name, l, o)
				}
			}
			if a := k.any(ref[guard+o : guard+o+l : guard+o+l]); a != wantAny {
				t.Fatalf("%s: any = %v, generic says %v (length %d offset %d)", k.name, a, wantAny, l, o)
			}
			if got, want := nonZeroWith(k, ref[guard+o:guard+o+l]), countNonZero(ref[guard+o:guard+o+l]); got != want {
				t.Fatalf("%s: NonZeroBytes = %d, want %d", k.name, got, want)
			}
		}
	})
}

// ZeroStream streams every length (through the parallel split too) and stays inside
// the range.
func TestZeroStream(t *testing.T) {
	t.Cleanup(func() { SetThresholds(0, 0) })
	n := 3*chunkBytes + 12345
	c := newCanaryBuf(guard + 64 + n + guard)
	for _, par := range []int{1 << 30, 1 << 20} {
		SetThresholds(1<<30, par) // the NT threshold plays no part in ZeroStream
		for _, l := range []int{0, 1, 511, 512, 513, 4097, 65537, n} {
			for _, off := range []int{0, 9, 63} {
				lo, hi := guard+off, guard+off+l
				c.reset(hi + guard)
				ZeroStream(c.buf[lo:hi:hi])
				if !c.check(t, "ZeroStream", lo, hi, hi+guard) {
					t.Fatalf("ZeroStream parallel threshold %d length %d offset %d", par, l, off)
				}
			}
		}
	}
}
