package forensic

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

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

// TestVerifyParallelReadError fails the read of a multi-chunk log midway:
// the error names the path and wraps the cause, and no chunk goroutine
// outlives the call (its buffers would be reused).
func TestVerifyParallelReadError(t *testing.T) {
	e := newCPEnv(t)
	w, err := Open(e.opts(1 << 30))
	require.NoError(t, err)
	writeN(t, w, 300)
	require.NoError(t, w.Close())
	data, err := os.ReadFile(e.log)
	require.NoError(t, err)

	oldChunk := chunkSize
	defer func() { chunkSize = oldChunk }()
	chunkSize = 3000
	cause := errors.New("disk on fire")
	before := runtime.NumGoroutine()
	r := io.MultiReader(bytes.NewReader(data[:len(data)*2/3]), iotest.ErrReader(cause))
	v := newVerifier(e.vopts())
	_, err = v.verifyParallel(r, int64(len(data)), e.log, filepath.Base(e.log), 0, "GENESIS")
	require.ErrorIs(t, err, cause)
	require.ErrorContains(t, err, e.log)
	require.LessOrEqual(t, runtime.NumGoroutine(), before)
}

func TestParallelChunk(t *testing.T) {
	for _, c := range []struct {
		size    int64
		workers int
		want    int
	}{
		{12 << 20, 2, 3 << 19},  // ~four chunks per worker
		{1 << 30, 2, chunkSize}, // capped
		{9 << 20, 16, 1 << 20},  // floored
		{8 << 20, 1, 2 << 20},
	} {
		require.Equal(t, c.want, parallelChunk(c.size, c.workers), "%d bytes on %d workers", c.size, c.workers)
	}
}
