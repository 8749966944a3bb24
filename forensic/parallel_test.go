package forensic

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParallelVerifyMatchesSequential verifies multi-chunk files both ways
// (clean, tampered, with checkpoints) and requires identical results.
func TestParallelVerifyMatchesSequential(t *testing.T) {
	e := newCPEnv(t)
	o := e.opts(1 << 30)
	o.CheckpointEvery = 37
	w, err := Open(o)
	require.NoError(t, err)
	writeN(t, w, 300)
	require.NoError(t, w.Close())
	clean, err := os.ReadFile(e.log)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(clean), "\n"), "\n")

	variants := map[string]string{"clean": string(clean)}
	bad := append([]string{}, lines...)
	bad[120] = strings.Replace(bad[120], "h120", "hXXX", 1)
	bad = append(bad[:200], bad[201:]...)
	variants["tampered"] = strings.Join(bad, "\n") + "\n"
	variants["torn"] = string(clean[:len(clean)-50])
	variants["truncated"] = strings.Join(lines[:250], "\n") + "\n"

	oldMin, oldChunk := parallelMin, chunkSize
	defer func() { parallelMin, chunkSize = oldMin, oldChunk }()
	for name, data := range variants {
		p := filepath.Join(t.TempDir(), "kv_cache.log")
		require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
		parallelMin, chunkSize = 1<<40, oldChunk
		seq, err := VerifyAll(p, e.vopts())
		require.NoError(t, err)
		parallelMin, chunkSize = 1024, 3000
		par, err := VerifyAll(p, e.vopts())
		require.NoError(t, err)
		require.Equal(t, seq, par, name)
		require.Equal(t, name == "clean", par.OK, "%s: %+v", name, par.Failures)
	}
}
