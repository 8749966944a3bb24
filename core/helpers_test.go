package core

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/forensic"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// newTracer opens a tracer logging into a temp dir; mut adjusts the config.
func newTracer(t testing.TB, mut func(*Config)) (*Tracer, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.LogPath = filepath.Join(t.TempDir(), "kv_cache.log")
	cfg.SweepIntervalMS = 0
	cfg.FsyncPolicy = FsyncNone
	if mut != nil {
		mut(&cfg)
	}
	tr, err := Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr, cfg.LogPath
}

// region maps n bytes of real memory (not Go heap) filled with fill.
func region(t testing.TB, n int, fill byte) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, max(n, 1), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Munmap(b) })
	for i := range b {
		b[i] = fill
	}
	return b[:n]
}

func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func desc(b []byte) AllocDesc {
	return AllocDesc{Ptr: addr(b), NBytes: uint64(len(b)), Tenant: "tenant-a", Request: "req-1", Model: "llama-3-8b"}
}

type record map[string]any

// readLog flushes the tracer, verifies the chain and returns its records.
func readLog(t testing.TB, tr *Tracer, path string) []record {
	t.Helper()
	if !tr.closed.Load() {
		require.NoError(t, tr.Flush())
	}
	res, err := forensic.VerifyAll(path, forensic.VerifyOptions{HMACKey: tr.cfg.HMACKey})
	require.NoError(t, err)
	require.True(t, res.OK, "chain verification failed: %+v", res.Failures)
	var out []record
	for _, name := range res.Files {
		f, err := os.Open(filepath.Join(filepath.Dir(path), name))
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r record
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
			out = append(out, r)
		}
		require.NoError(t, sc.Err())
		f.Close()
	}
	require.Equal(t, res.Records, len(out))
	return out
}

func events(rs []record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r["event_type"].(string))
	}
	return out
}

// ofEvent returns the records of one event type.
func ofEvent(rs []record, ev string) []record {
	var out []record
	for _, r := range rs {
		if r["event_type"] == ev {
			out = append(out, r)
		}
	}
	return out
}

// blockIDs returns 0..n-1.
func blockIDs(n int) []uint32 {
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	return ids
}

func countEvents(rs []record) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[r["event_type"].(string)]++
	}
	return m
}

func forHandle(rs []record, h Handle) []record {
	var out []record
	for _, r := range rs {
		if r["handle"] == h.String() {
			out = append(out, r)
		}
	}
	return out
}

func requireStatus(t testing.TB, want Status, err error) {
	t.Helper()
	require.Equal(t, want.String(), StatusOf(err).String(), "error: %v", err)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
