package forensic

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQuoteMasks: nextQuote over the masks finds what a byte scan finds,
// from every start, on lines of every length around the 64-byte blocks,
// with the assembly and the portable blocks.
func TestQuoteMasks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`"\ab:,{}` + "\x00\xff\x22\x5c\xa2\xdc")
	naive := func(in []byte, j int) int {
		for ; j < len(in); j++ {
			if in[j] == '"' || in[j] == '\\' {
				return j
			}
		}
		return len(in)
	}
	var qm []uint64
	for n := 0; n <= 300; n++ {
		for rep := 0; rep < 4; rep++ {
			in := make([]byte, n)
			for i := range in {
				if rng.IntN(8) == 0 || rep == 3 {
					in[i] = alphabet[rng.IntN(len(alphabet))]
				} else {
					in[i] = byte('a' + rng.IntN(26))
				}
			}
			qm = quoteMasks(qm, in)
			generic := make([]uint64, len(qm))
			quoteMasksGeneric(generic[:n/64], in[:n/64*64])
			if n%64 != 0 {
				generic[n/64] = quoteMaskTail(in[n/64*64:])
			}
			require.Equal(t, generic, append([]uint64{}, qm...), "masks of %q", in)
			for j := 0; j <= n+2; j++ {
				require.Equal(t, naive(in, j), nextQuote(qm, j, n), "from %d in %q", j, in)
			}
		}
	}
}
