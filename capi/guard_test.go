package main

import (
	"errors"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kvhygiene/kvhygiene/core"
)

// panicky behaves like an export whose body panics.
func panicky() (st int32) {
	var cst = statusC(stOK)
	defer func() { st = int32(cst) }()
	defer recoverPanic("kvh_test", &cst, faultsPanic())
	panic("boom")
}

func TestRecoverPanic(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	assert.Equal(t, int32(stInternal), panicky())
	assert.Contains(t, lastError(), "kvh_test: internal error: panic in kvh_test: boom")
	assert.Contains(t, lastError(), "poisoned")
}

func TestRet(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	assert.Equal(t, int32(stOK), int32(ret("kvh_x", nil)))
	assert.Equal(t, int32(core.StatusFreed), int32(ret("kvh_free", &core.Error{Code: core.StatusFreed, Msg: "handle 5 was freed"})))
	assert.Equal(t, "kvh_free: handle 5 was freed", lastError())
	assert.Equal(t, int32(stInternal), int32(ret("kvh_x", errors.New("plain"))))
	assert.Equal(t, int32(stInternal), int32(ret("kvh_x", &core.Error{Code: 99, Msg: "out of range"})))
	assert.Equal(t, int32(stInternal), int32(ret("kvh_x", &core.Error{Code: stOK, Msg: "ok is not an error"})))
}

func TestStatusValuesMatchCore(t *testing.T) {
	// capi takes its codes from the header; core defines its own: they must agree.
	pairs := map[core.Status]core.Status{
		stOK: core.StatusOK, stInvalidArg: core.StatusInvalidArg, stNullArg: core.StatusNullArg,
		stStructSize: core.StatusStructSize, stInvalidID: core.StatusInvalidID,
		stUnknownHandle: core.StatusUnknownHandle, stIO: core.StatusIO,
		stBufferTooSmall: core.StatusBufferTooSmall, stClosed: core.StatusClosed,
		stInternal: core.StatusInternal, stLastStatus: core.StatusBusy,
	}
	for header, c := range pairs {
		assert.Equal(t, c, header, "header %d vs core %s", header, c)
	}
	assert.Equal(t, core.MaxIDLen, maxIDLen)
}

func TestLastErrorTruncatesOnRuneBoundary(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	msg := ""
	for len(msg) < 2000 {
		msg += "é"
	}
	setLastError(msg)
	got := lastError()
	assert.Less(t, len(got), 1024)
	assert.Greater(t, len(got), 1000)
	assert.True(t, len(got)%2 == 0, "cut inside a 2-byte rune")
}

// faulty behaves like an export that reads through a bad caller pointer.
func faulty(b []byte) (st int32, got byte) {
	var cst = statusC(stOK)
	defer func() { st = int32(cst) }()
	defer recoverPanic("kvh_fault", &cst, faultsPanic())
	return 0, b[0]
}

func TestRecoverMemoryFault(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	page, err := unix.Mmap(-1, 0, 4096, unix.PROT_NONE, unix.MAP_ANON|unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer func() { _ = unix.Munmap(page) }()
	st, _ := faulty(page)
	assert.Equal(t, int32(stInternal), st)
	assert.Contains(t, lastError(), "memory fault")
	assert.False(t, debug.SetPanicOnFault(false), "fault setting not restored")
}
