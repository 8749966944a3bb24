//go:build linux

package cpuzero

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A kernel that faults on inaccessible memory, in the calling goroutine or in a parallel
// worker, is a *FaultError from Guard, not a crash; other panics still propagate.
func TestGuardTurnsFaultsIntoErrors(t *testing.T) {
	t.Cleanup(func() { SetThresholds(0, 0) })
	const n = 8 << 20
	m, err := unix.Mmap(-1, 0, n, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	require.NoError(t, err)
	defer unix.Munmap(m)
	for _, par := range []int{1 << 30, 1 << 20} { // one goroutine, then split across workers
		SetThresholds(0, par)
		for name, f := range map[string]func(){
			"Zero":         func() { Zero(m) },
			"ZeroStream":   func() { ZeroStream(m) },
			"IsZero":       func() { IsZero(m) },
			"NonZeroBytes": func() { NonZeroBytes(m) },
		} {
			err := Guard(f)
			var fe *FaultError
			require.True(t, errors.As(err, &fe), "%s (parallel threshold %d): %v", name, par, err)
			require.GreaterOrEqual(t, fe.Addr, uintptr(unsafe.Pointer(&m[0])))
			require.Less(t, fe.Addr, uintptr(unsafe.Pointer(&m[0]))+n)
			require.Contains(t, err.Error(), "memory fault")
		}
	}
	// still usable afterwards
	b := make([]byte, 4096)
	b[9] = 1
	require.NoError(t, Guard(func() { Zero(b) }))
	require.True(t, IsZero(b))
	require.PanicsWithValue(t, "boom", func() { _ = Guard(func() { panic("boom") }) })
}
