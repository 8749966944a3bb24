package forensic

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPipelineMatchesCanonical pushes large batches through the pipeline
// (with rotations inside batches) and checks every line byte for byte
// against Canonical of its parsed record, plus both verifiers: with an HMAC
// key (streamed, two-lane hasher), without one (streamed, one SHA-256), and
// with a key but the two-lane hasher off (three phases, as without SHA-NI).
func TestPipelineMatchesCanonical(t *testing.T) {
	for _, c := range []struct {
		name    string
		keyless bool
		sha2x   bool
	}{{"hmac", false, true}, {"keyless", true, true}, {"hmac-three-phases", false, false}} {
		t.Run(c.name, func(t *testing.T) {
			if !c.sha2x {
				sha2xOff.Store(true)
				defer sha2xOff.Store(false)
			}
			testPipelineMatchesCanonical(t, c.keyless)
		})
	}
}

func testPipelineMatchesCanonical(t *testing.T, keyless bool) {
	e := newCPEnv(t)
	o := e.opts(60_000)
	o.CheckpointEvery = 500
	vo := e.vopts()
	key := testKey
	if keyless {
		o.HMACKey, vo.HMACKey, key = nil, nil, nil
	}
	w, err := Open(o)
	require.NoError(t, err)
	// 4 appenders outpace the writer, whose 200 us linger lets batches
	// grow well past pipelineMin
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 600; i++ {
				require.NoError(t, w.Append("sanitize_end", Field{"handle", fmt.Sprintf("g%d-%d", g, i)},
					Field{"coverage_pct", 99.5}, Field{"note", "é\u2028\"\\\x01"}, Field{"shape", []int64{int64(i), 2}},
					Field{"details", map[string]any{"seq": i, "z": nil}}))
			}
		}(g)
	}
	wg.Wait()
	require.NoError(t, w.Close())
	require.Greater(t, w.pipelined.Load(), uint64(1000), "the pipeline was not exercised")
	require.Greater(t, w.Stats().Rotations, uint64(5))

	files, err := listFiles(e.log)
	require.NoError(t, err)
	n := 0
	for _, lf := range files {
		for _, l := range readLines(t, lf.path) {
			prefix, _, _, ok := fastSplit([]byte(l))
			require.True(t, ok)
			m, err := parseLine([]byte(l))
			require.NoError(t, err)
			canon, _, _, _, err := slowCanonical(m)
			require.NoError(t, err)
			require.Equal(t, string(canon), string(prefix)+"}")
			n++
		}
	}
	require.Equal(t, 2400+int(w.Stats().Rotations), n)
	res, err := VerifyAll(e.log, vo)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.True(t, seedVerify(t, e.log, key))
}
