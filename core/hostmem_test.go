package core

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/stretchr/testify/require"
)

// mapsPerm returns the permission string of the /proc/self/maps entry that
// contains addr.
func mapsPerm(t *testing.T, a uint64) string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var lo, hi uint64
		var perm string
		if _, err := fmt.Sscanf(sc.Text(), "%x-%x %s", &lo, &hi, &perm); err != nil {
			continue
		}
		if a >= lo && a < hi {
			return perm
		}
	}
	return ""
}

func TestLibraryOwnedMemory(t *testing.T) {
	tr, path := newTracer(t, nil)
	const n = 10000
	h, err := tr.Allocate(AllocDesc{NBytes: n, Tenant: "t", Request: "r", Model: "m"})
	require.NoError(t, err)
	info := mustInfo(t, tr, h)
	require.True(t, info.LibraryOwned)
	require.NotZero(t, info.Ptr)
	pg := pageSize()
	require.Zero(t, info.Ptr%pg, "page aligned")

	// guard pages before and after are PROT_NONE, the data is read-write
	require.Equal(t, "---p", mapsPerm(t, info.Ptr-1))
	require.True(t, strings.HasPrefix(mapsPerm(t, info.Ptr), "rw"))
	end := info.Ptr + (n+pg-1)/pg*pg
	require.True(t, strings.HasPrefix(mapsPerm(t, end-1), "rw"))
	require.Equal(t, "---p", mapsPerm(t, end))
	s := tr.reg.slotAt(h.idx())
	before, after := s.ext.mem.guardRanges()
	require.Equal(t, info.Ptr-pg, uint64(uintptr(unsafe.Pointer(&before[0]))))
	require.Equal(t, end, uint64(uintptr(unsafe.Pointer(&after[0]))))

	data := unsafe.Slice((*byte)(cpuzero.Ptr(uintptr(info.Ptr))), n)
	for i := range data {
		data[i] = byte(i) | 1
	}
	_, err = tr.Sanitize(h, SanitizeOpts{})
	require.NoError(t, err)
	for i := range data {
		data[i] = 0x5A // written after sanitize: free must zeroize again
	}
	var seen []byte
	testHookBeforeUnmap = func(b []byte) { seen = append([]byte(nil), b...) }
	defer func() { testHookBeforeUnmap = nil }()
	// a used-after-sanitize buffer cannot be freed ...
	require.NoError(t, tr.MarkInUse(h, ""))
	requireStatus(t, StatusCoverage, tr.Free(h))
	_, err = tr.Sanitize(h, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.ReleaseQuarantine(h, "re-sanitized"))
	for i := range data {
		data[i] = 0x5A
	}
	require.NoError(t, tr.Free(h))
	require.Len(t, seen, n)
	require.True(t, allZero(seen), "library-owned memory zeroized before unmap")
	require.Equal(t, "", mapsPerm(t, info.Ptr), "unmapped")

	rs := readLog(t, tr, path)
	a := rs[0]
	require.Equal(t, true, a["library_owned"])
	require.Equal(t, float64(info.Ptr), a["ptr"])
	locked, ok := a["mlock"].(bool)
	require.True(t, ok)
	require.Equal(t, info.Locked, locked)
	if !locked {
		require.Contains(t, a["mlock_error"], "RLIMIT_MEMLOCK")
	}
}

func TestLibraryOwnedReleasedOnClose(t *testing.T) {
	tr, _ := newTracer(t, nil)
	h, err := tr.Allocate(AllocDesc{NBytes: 3 * 4096, Tenant: "t", Request: "r", Model: "m"})
	require.NoError(t, err)
	p := mustInfo(t, tr, h).Ptr
	require.NotEmpty(t, mapsPerm(t, p))
	require.NoError(t, tr.Close())
	require.Equal(t, "", mapsPerm(t, p))
}
