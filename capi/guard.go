package main

/*
#include "kvh_internal.h"
*/
import "C"

import (
	"fmt"
	"runtime/debug"

	"github.com/kvhygiene/kvhygiene/core"
)

// ret turns the result of a call into a status for C. A non-nil error also
// sets the calling thread's last error to "fn: message".
func ret(fn string, err error) C.kvh_status {
	if err == nil {
		return statusC(stOK)
	}
	st := core.StatusOf(err)
	if st == stOK || st < 0 || st > stLastStatus {
		st = stInternal
	}
	setLastError(fn + ": " + err.Error())
	return statusC(st)
}

// faultsPanic makes a memory fault in this call (a bad caller pointer read or
// written by Go code) a recoverable panic instead of a fatal error, so the
// host gets KVH_E_INTERNAL rather than a dead process. It returns the previous
// setting, which recoverPanic restores.
func faultsPanic() bool { return debug.SetPanicOnFault(true) }

// recoverPanic is deferred first by every export, as
// defer recoverPanic(fn, &st, faultsPanic()): a panic becomes KVH_E_INTERNAL,
// poisons the library and never unwinds into C.
func recoverPanic(fn string, st *C.kvh_status, prevFault bool) {
	debug.SetPanicOnFault(prevFault)
	r := recover()
	if r == nil {
		return
	}
	reason := fmt.Sprintf("panic in %s: %v", fn, r)
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		reason = fmt.Sprintf("panic in %s: memory fault at %#x (is a pointer argument invalid?): %v", fn, f.Addr(), r)
	}
	poisonLibrary(reason)
	setLastError(fn + ": internal error: " + reason + "; the library is now poisoned, restart the process")
	*st = statusC(stInternal)
}
