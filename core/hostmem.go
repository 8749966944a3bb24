package core

import (
	"errors"
	"fmt"
	"math/bits"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
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
