package core

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/kvhygiene/kvhygiene/forensic"
	"golang.org/x/sys/unix"
)

// hostMem is library-owned host memory: one mapping laid out as
// [guard page PROT_NONE][data, rounded up to pages][guard page PROT_NONE].
// The data pages are MADV_DONTDUMP (kept out of core dumps),
// MADV_WIPEONFORK where the kernel supports it, and mlock'ed when
// RLIMIT_MEMLOCK allows; otherwise lockErr says why.
type hostMem struct {
	mapping []byte
	data    []byte // len == the requested nbytes; starts page-aligned after the first guard
	locked  bool
	lockErr string
	// set when parked: the buffer that freed it, for a write_after_free record
	prevHandle Handle
	prevTenant any
}

func pageSize() uint64 { return uint64(unix.Getpagesize()) }

func mapHost(n uint64) (*hostMem, error) {
	pg := pageSize()
	rounded, c1 := bits.Add64(n, pg-1, 0)
	rounded &^= pg - 1
	total, c2 := bits.Add64(rounded, 2*pg, 0)
	if c1 != 0 || c2 != 0 || total > 1<<62 {
		return nil, errorf(StatusInvalidArg, "nbytes %d is too large to map", n)
	}
	m, err := unix.Mmap(-1, 0, int(total), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		if errors.Is(err, unix.ENOMEM) {
			return nil, errorf(StatusNoMem, "core: mmap %d bytes: %v", total, err)
		}
		return nil, errorf(StatusNoMem, "core: mmap %d bytes: %v", total, err)
	}
	body := m[pg : pg+rounded]
	if err := unix.Mprotect(body, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		_ = unix.Munmap(m)
		return nil, errorf(StatusNoMem, "core: mprotect %d bytes: %v", rounded, err)
	}
	if err := unix.Madvise(body, unix.MADV_DONTDUMP); err != nil {
		_ = unix.Munmap(m)
		return nil, errorf(StatusInternal, "core: madvise(MADV_DONTDUMP): %v", err)
	}
	_ = unix.Madvise(body, unix.MADV_WIPEONFORK) // best effort (Linux >= 4.14)
	h := &hostMem{mapping: m, data: body[:n:n]}
	if err := unix.Mlock(body); err != nil {
		var lim unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
		h.lockErr = fmt.Sprintf("mlock %d bytes: %v (RLIMIT_MEMLOCK soft %d)", rounded, err, lim.Cur)
	} else {
		h.locked = true
	}
	return h, nil
}

func (h *hostMem) addr() uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(h.data)))) }

// guardRanges returns the two guard pages (tests).
func (h *hostMem) guardRanges() (before, after []byte) {
	pg := pageSize()
	return h.mapping[:pg], h.mapping[uint64(len(h.mapping))-pg:]
}

func (h *hostMem) release() {
	if h.mapping != nil {
		_ = unix.Munmap(h.mapping)
		h.mapping, h.data = nil, nil
	}
}

func (h *hostMem) zeroAndRelease() {
	if h.data != nil {
		cpuzero.Zero(h.data)
	}
	h.release()
}

// Reuse of library-owned mappings.
//
// Mapping a buffer costs mmap, mprotect, two madvise calls and an mlock, and
// unmapping it a munmap: ~25 µs per 4 KiB buffer on the development VM, most
// of a lifecycle. Free therefore parks a mapping whose every data page it has
// just zeroized and verified in a small per-tracer cache (still locked and
// MADV_DONTDUMP), and Allocate takes a parked mapping of the same page count
// after checking again that every page reads back zero.
//
// Parked pages stay writable: making them PROT_NONE and back costs two
// mprotect calls whose TLB shootdowns (an IPI to every CPU that ran the
// process, a VM exit each on a virtual machine) made the library-owned
// lifecycle of `make bench-capi` 23 µs instead of 4.7 µs on the development
// VM (2026-11-22, a build that protected parked pages), nearly as much as the
// mapping they replace. A write through a stale
// pointer kept by the previous owner (a use-after-free in the engine) is
// instead caught by the check on reuse: that mapping is unmapped, never
// handed out, and an isolation_violation record (operation
// "write_after_free") names the buffer that had it. Without the cache such a
// write lands in whatever the kernel maps at that address next, unnoticed.

const (
	// hostCacheMaxBytes bounds the mapped bytes parked per tracer (they stay
	// locked, and count against RLIMIT_MEMLOCK).
	hostCacheMaxBytes = 64 << 20
	// hostCacheMaxMapping is the largest data size parked; larger mappings
	// are unmapped on free.
	hostCacheMaxMapping = 4 << 20
)

// hostCache holds parked mappings by data page count (rounded bytes).
type hostCache struct {
	mu    sync.Mutex
	bytes uint64
	free  map[uint64][]*hostMem
	// onDirty, when set, is told about a parked mapping that did not read
	// back zero when it was taken (it is unmapped afterwards).
	onDirty func(h *hostMem, nonzero uint64)
}

// body returns the whole data area of the mapping (between the guards).
func (h *hostMem) body() []byte {
	pg := pageSize()
	return h.mapping[pg : uint64(len(h.mapping))-pg]
}

// put parks h, whose data the caller has zeroized and verified; it zeroizes
// and verifies the rest of the data pages too (a caller may have written past
// nbytes inside its last page). It reports false (the caller unmaps) when h
// is too large, the cache is full or the rest does not read back zero.
func (c *hostCache) put(h *hostMem) bool {
	body := h.body()
	n := uint64(len(body))
	if n > hostCacheMaxMapping {
		return false
	}
	c.mu.Lock()
	full := c.bytes+n > hostCacheMaxBytes
	if !full {
		c.bytes += n // reserved
	}
	c.mu.Unlock()
	if full {
		return false
	}
	tail := body[len(h.data):]
	cpuzero.Zero(tail)
	if !cpuzero.IsZero(tail) {
		c.unreserve(n)
		return false
	}
	h.data = nil
	c.mu.Lock()
	if c.free == nil {
		c.free = make(map[uint64][]*hostMem)
	}
	c.free[n] = append(c.free[n], h)
	c.mu.Unlock()
	return true
}

func (c *hostCache) unreserve(n uint64) {
	c.mu.Lock()
	c.bytes -= n
	c.mu.Unlock()
}

// get returns a parked mapping for n bytes (data set, writable, all zero),
// or nil.
func (c *hostCache) get(n uint64) *hostMem {
	pg := pageSize()
	rounded := (n + pg - 1) &^ (pg - 1)
	if n == 0 || rounded > hostCacheMaxMapping {
		return nil
	}
	for {
		c.mu.Lock()
		list := c.free[rounded]
		if len(list) == 0 {
			c.mu.Unlock()
			return nil
		}
		h := list[len(list)-1]
		list[len(list)-1] = nil
		c.free[rounded] = list[:len(list)-1]
		c.bytes -= rounded
		c.mu.Unlock()
		body := h.body()
		if cpuzero.IsZero(body) {
			h.data = body[:n:n]
			return h
		}
		if c.onDirty != nil {
			c.onDirty(h, cpuzero.NonZeroBytes(body))
		}
		h.release() // never hand out what is not proven zero
	}
}

// drain unmaps every parked mapping.
func (c *hostCache) drain() {
	c.mu.Lock()
	free := c.free
	c.free, c.bytes = nil, 0
	c.mu.Unlock()
	for _, list := range free {
		for _, h := range list {
			h.release()
		}
	}
}

// writeAfterFree records that a parked mapping was written after its buffer
// was freed: an isolation violation by the engine (a stale pointer), caught
// before the memory reached another buffer.
func (t *Tracer) writeAfterFree(h *hostMem, nonzero uint64) {
	t.m.isolation.Inc()
	_ = t.append("isolation_violation", []forensic.Field{
		{Key: "handle", Value: forensic.Decimal(h.prevHandle)},
		{Key: "target_tenant", Value: h.prevTenant},
		{Key: "operation", Value: "write_after_free"},
		{Key: "nonzero_bytes", Value: nonzero},
		{Key: "library_owned", Value: true},
	})
}
