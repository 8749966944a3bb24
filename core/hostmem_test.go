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
	require.True(t, strings.HasPrefix(mapsPerm(t, info.Ptr), "rw"), "parked for reuse")

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

// A freed mapping is parked inaccessible and handed out again, proven zero
// over all of its pages, to the next allocation of the same page count.
func TestLibraryOwnedReuse(t *testing.T) {
	tr, path := newTracer(t, nil)
	pg := pageSize()
	const n = 10000
	alloc := func(n uint64, tenant string) (Handle, []byte) {
		h, err := tr.Allocate(AllocDesc{NBytes: n, Tenant: tenant, Request: "r", Model: "m"})
		require.NoError(t, err)
		p := mustInfo(t, tr, h).Ptr
		return h, unsafe.Slice((*byte)(cpuzero.Ptr(uintptr(p))), (n+pg-1)/pg*pg)
	}
	h1, pages := alloc(n, "tenant-a")
	for i := range pages { // the caller writes past nbytes, inside its last page
		pages[i] = 0xA5
	}
	_, err := tr.Sanitize(h1, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h1))
	p1 := uint64(uintptr(unsafe.Pointer(&pages[0])))

	h2, pages2 := alloc(n-100, "tenant-b") // same page count: reused
	require.Equal(t, p1, uint64(uintptr(unsafe.Pointer(&pages2[0]))))
	require.True(t, strings.HasPrefix(mapsPerm(t, p1), "rw"))
	require.True(t, allZero(pages2), "no byte of tenant-a reaches tenant-b")
	require.Equal(t, n-100, int(mustInfo(t, tr, h2).NBytes))
	_, err = tr.Sanitize(h2, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h2))

	// another page count gets a fresh mapping
	h3, pages3 := alloc(5*pg, "tenant-c")
	require.NotEqual(t, p1, uint64(uintptr(unsafe.Pointer(&pages3[0]))))
	_, err = tr.Sanitize(h3, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h3))

	// a parked mapping that no longer reads back zero is never handed out
	c := &tr.hostCache
	c.mu.Lock()
	parked := c.free[5*pg][0]
	c.mu.Unlock()
	body := parked.body()
	body[5] = 1 // a write through tenant-c's stale pointer after its free
	body[4000] = 2
	h4, pages4 := alloc(5*pg, "tenant-d")
	require.True(t, allZero(pages4), "a fresh mapping (the kernel may place it at the same address)")
	c.mu.Lock()
	require.Empty(t, c.free[5*pg], "the dirty mapping left the cache")
	c.mu.Unlock()
	waf := ofEvent(readLog(t, tr, path), "isolation_violation")
	require.Len(t, waf, 1)
	require.Equal(t, "write_after_free", waf[0]["operation"])
	require.Equal(t, h3.String(), waf[0]["handle"])
	require.Equal(t, "tenant-c", waf[0]["target_tenant"])
	require.Equal(t, 2.0, waf[0]["nonzero_bytes"])
	_, err = tr.Sanitize(h4, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h4))

	// too large to park: unmapped on free
	h5, pages5 := alloc(hostCacheMaxMapping+1, "tenant-e")
	_, err = tr.Sanitize(h5, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h5))
	require.Equal(t, "", mapsPerm(t, uint64(uintptr(unsafe.Pointer(&pages5[0])))))

	// Close unmaps what is parked
	require.NoError(t, tr.Close())
	require.Equal(t, "", mapsPerm(t, p1))
}

// The parked bytes are bounded.
func TestHostCacheBound(t *testing.T) {
	var c hostCache
	var ms []*hostMem
	defer func() {
		c.drain()
		for _, m := range ms {
			m.release()
		}
	}()
	for i := 0; i < hostCacheMaxBytes/hostCacheMaxMapping+2; i++ {
		m, err := mapHost(hostCacheMaxMapping)
		require.NoError(t, err)
		if !c.put(m) {
			ms = append(ms, m)
		}
	}
	require.Equal(t, uint64(hostCacheMaxBytes), c.bytes)
	require.Len(t, ms, 2)
}
