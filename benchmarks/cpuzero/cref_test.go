package cpuzerobench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReferences(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 4096, 65537} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i) | 1
		}
		MemsetLoop(b, 2)
		require.Equal(t, make([]byte, n), b)
		require.False(t, ORLoop(b, 3), "length %d", n)
		if n > 0 {
			b[n-1] = 0x40
			require.True(t, ORLoop(b, 1), "last byte of length %d", n)
			b[n-1] = 0
			b[0] = 1
			require.True(t, ORLoop(b, 2), "first byte of length %d", n)
			MemsetOnce(b)
			require.False(t, ORLoop(b, 1))
		}
	}
}
