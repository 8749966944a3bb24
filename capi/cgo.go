package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include -I${SRCDIR}
#include "kvh_internal.h"
*/
import "C"

import (
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core"
)

// Status codes used by this package, taken from the public header so they
// cannot drift from it.
const (
	stOK             = core.Status(C.KVH_OK)
	stInvalidArg     = core.Status(C.KVH_E_INVALID_ARG)
	stNullArg        = core.Status(C.KVH_E_NULL_ARG)
	stStructSize     = core.Status(C.KVH_E_STRUCT_SIZE)
	stInvalidID      = core.Status(C.KVH_E_INVALID_ID)
	stUnknownHandle  = core.Status(C.KVH_E_UNKNOWN_HANDLE)
	stIO             = core.Status(C.KVH_E_IO)
	stBufferTooSmall = core.Status(C.KVH_E_BUFFER_TOO_SMALL)
	stClosed         = core.Status(C.KVH_E_CLOSED)
	stInternal       = core.Status(C.KVH_E_INTERNAL)
	stLastStatus     = core.Status(C.KVH_E_BUSY)
)

// maxIDLen is KVH_MAX_ID_LEN.
const maxIDLen = int(C.KVH_MAX_ID_LEN)

// setLastError stores msg as the calling thread's kvh_last_error().
func setLastError(msg string) {
	C.kvhc_set_error((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

// poisonLibrary makes every later call return KVH_E_POISONED.
func poisonLibrary(msg string) {
	C.kvhc_poison((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

// statusC converts a Go status for return to C.
func statusC(s core.Status) C.kvh_status { return C.kvh_status(s) }

// lastError returns the calling thread's kvh_last_error() (tests lock the
// goroutine to its thread first).
func lastError() string { return C.GoString(C.kvh_last_error()) }
