package cpuzero

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Ranges that end at, or start right after, an inaccessible page: a kernel that read or
// wrote one byte outside its range would crash the test with SIGSEGV. The memory is not
// Go-managed and is reached through Ptr from its address, as capi does with caller pointers.
func TestGuardPages(t *testing.T) {
	ps := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 4*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	require.NoError(t, err)
	defer func() { require.NoError(t, unix.Munmap(mem)) }()
	require.NoError(t, unix.Mprotect(mem[:ps], unix.PROT_NONE))
	require.NoError(t, unix.Mprotect(mem[3*ps:], unix.PROT_NONE))
	addr := uintptr(unsafe.Pointer(&mem[0])) + uintptr(ps)
	size := 2 * ps // two accessible pages between two guard pages
	region := unsafe.Slice((*byte)(Ptr(addr)), size)
	fill, zeros := testMem(size), testMem(size)
	for i := range fill {
		fill[i] = 0xa5
	}
	for _, k := range usable {
		for _, m := range kernelModes(k) {
			for n := 0; n <= min(4097, size); n++ {
				copy(region, fill)
				tail := region[size-n:]
				head := region[:n]
				require.Equal(t, n > 0, k.any(tail), "%s: any on tail range length %d", m.name, n)
				m.f(tail)
				require.False(t, k.any(tail), "%s: tail range length %d", m.name, n)
				require.True(t, bytes.Equal(tail, zeros[:n]))
				require.True(t, bytes.Equal(region[:size-n], fill[:size-n]), "%s: bytes before the tail changed", m.name)
				copy(region, fill)
				m.f(head)
				require.False(t, k.any(head), "%s: head range length %d", m.name, n)
				require.True(t, bytes.Equal(region[n:], fill[n:]), "%s: bytes after the head changed", m.name)
			}
		}
	}
}
