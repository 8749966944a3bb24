package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

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

// TestVerifyWithProgressOnTerminal: with stderr a real terminal (a pty) and a
// log above progressMinBytes, a bar is drawn on stderr and cleared at the
// end; the result is still VerifyAll's.
func TestVerifyWithProgressOnTerminal(t *testing.T) {
	master, slave := openPty(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "kv_cache.log")
	w, err := forensic.Open(forensic.Options{Path: path, Fsync: forensic.FsyncNone, MaxBytes: 1 << 30})
	require.NoError(t, err)
	pad := strings.Repeat("x", 4000)
	n := 0
	for ; n*4100 < progressMinBytes+(1<<20); n++ {
		require.NoError(t, w.Append("write", forensic.Field{Key: "handle", Value: "h"}, forensic.Field{Key: "pad", Value: pad}))
	}
	require.NoError(t, w.Close())

	var out bytes.Buffer
	read := make(chan struct{})
	go func() { _, _ = io.Copy(&out, master); close(read) }()
	prev := progressTick
	progressTick = time.Millisecond
	defer func() { progressTick = prev }()
	r, err := verifyWithProgress(path, forensic.VerifyOptions{}, slave)
	require.NoError(t, err)
	assert.True(t, r.OK)
	assert.Equal(t, n, r.Records)
	require.NoError(t, slave.Close())
	<-read // the master reads EIO once the slave is closed
	assert.Contains(t, out.String(), "verifying kv_cache.log [")
	assert.Contains(t, out.String(), "% of ")
}

// openPty opens a pseudo-terminal pair: what is written to slave is read
// from master.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0), "unlockpt")
	num, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	require.NoError(t, err, "ptsname")
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(num), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	return m, s
}
