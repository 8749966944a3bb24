package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/forensic"
)

func TestBar(t *testing.T) {
	assert.Equal(t, "[..........]", bar(0, 10))
	assert.Equal(t, "[#####.....]", bar(0.5, 10))
	assert.Equal(t, "[##########]", bar(1, 10))
	assert.Equal(t, "[##########]", bar(7, 10), "clamped above")
	assert.Equal(t, "[..........]", bar(-1, 10), "clamped below")
}

func TestHumanBytes(t *testing.T) {
	assert.Equal(t, "512 B", humanBytes(512))
	assert.Equal(t, "4.0 KiB", humanBytes(4096))
	assert.Equal(t, "1.5 MiB", humanBytes(1.5*(1<<20)))
}

// TestReadCharCountsReads: the progress source grows by what the process reads.
func TestReadCharCountsReads(t *testing.T) {
	before, ok := readChar()
	if !ok {
		t.Skip("/proc/self/io not readable here")
	}
	p := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(p, make([]byte, 1<<20), 0o600))
	_, err := os.ReadFile(p)
	require.NoError(t, err)
	after, ok := readChar()
	require.True(t, ok)
	assert.GreaterOrEqual(t, after-before, int64(1<<20))
}

// TestVerifyWithProgressNotTerminal: with stderr not a terminal nothing is
// drawn and the result is VerifyAll's.
func TestVerifyWithProgressNotTerminal(t *testing.T) {
	dir := t.TempDir()
	w, err := forensic.Open(forensic.Options{Path: filepath.Join(dir, "kv_cache.log"), Fsync: forensic.FsyncNone})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, w.Append("write", forensic.Field{Key: "handle", Value: "h"}))
	}
	require.NoError(t, w.Close())
	var stderr bytes.Buffer
	r, err := verifyWithProgress(filepath.Join(dir, "kv_cache.log"), forensic.VerifyOptions{}, &stderr)
	require.NoError(t, err)
	assert.True(t, r.OK)
	assert.Equal(t, 3, r.Records)
	assert.Empty(t, stderr.String())
}
