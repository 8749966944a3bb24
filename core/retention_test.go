package core

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// The tracer prunes its own rotated files (it holds the log's lock, so an
// external pruner cannot): beyond MaxRotated they are removed after a prune
// record declares them, and the chain still verifies with the gap shown.
func TestRetentionPrunesRotatedFiles(t *testing.T) {
	prev := retentionEvery
	retentionEvery = 10 * time.Millisecond
	t.Cleanup(func() { retentionEvery = prev })
	tr, path := newTracer(t, func(c *Config) {
		c.MaxLogBytes = 4096
		c.Retention = true
		c.MaxRotated = 1
		c.HMACKey = []byte("retention-secret")
		c.ArchiveDir = filepath.Join(filepath.Dir(c.LogPath), "archive")
	})
	rotated := func() []string {
		m, err := filepath.Glob(filepath.Join(filepath.Dir(path), "kv_cache-*.log"))
		require.NoError(t, err)
		return m
	}
	mem := region(t, 4096, 0xAB)
	for i := 0; len(rotated()) < 3 && tr.Writer().Stats().Rotations < 4; i++ {
		h, err := tr.Allocate(desc(mem))
		require.NoError(t, err)
		_, err = tr.Sanitize(h, SanitizeOpts{})
		require.NoError(t, err)
		require.NoError(t, tr.Free(h))
		require.NoError(t, tr.Flush())
		require.Less(t, i, 10000, "the log never rotated")
	}
	require.Eventually(t, func() bool { return len(rotated()) == 1 }, 5*time.Second, 10*time.Millisecond,
		"retention keeps one rotated file, have %v", rotated())
	require.NoError(t, tr.Close())
	// read after Close, which waits for the retention goroutine: it counts
	// the pruned files when Prune returns, just after they are gone
	require.Positive(t, counterValue(t, tr, "kv_hygiene_log_pruned_files_total"))

	archived, err := filepath.Glob(filepath.Join(filepath.Dir(path), "archive", "kv_cache-*.log"))
	require.NoError(t, err)
	require.NotEmpty(t, archived, "pruned files are archived, not deleted")
	res, err := forensic.VerifyAll(path, forensic.VerifyOptions{HMACKey: []byte("retention-secret")})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.NotEmpty(t, res.Pruned, "the removal is declared, not silent")
}

func TestRetentionConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		mut  func(*Config)
	}{
		{"no limit", func(c *Config) { c.Retention = true }},
		{"negative days", func(c *Config) { c.Retention = true; c.RetentionDays = -1 }},
		{"max_rotated below -1", func(c *Config) { c.Retention = true; c.MaxRotated = -2 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.LogPath = filepath.Join(t.TempDir(), "kv_cache.log")
			c.mut(&cfg)
			_, err := Open(cfg)
			requireStatus(t, StatusConfig, err)
		})
	}
}

// counterValue reads a counter from the tracer's registry by name.
func counterValue(t *testing.T, tr *Tracer, name string) float64 {
	t.Helper()
	mfs, err := tr.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}
