package main

/*
#include "kvh_internal.h"
*/
import "C"

import "unsafe"

// maxPathLen bounds path arguments (PATH_MAX).
const maxPathLen = 4096

// maxArray bounds element counts of caller arrays (handles, blocks, regions,
// shape) so a garbage count is refused instead of read.
const (
	maxHandles = 1 << 24
	maxBlocks  = 1 << 24
	maxRegions = 1 << 16
	maxShape   = 64
)

// cstr is a C string read with a length cap.
type cstr struct {
	s       string
	null    bool // the pointer was NULL
	tooLong bool // no NUL within the cap (s is empty then)
}

// readCStr copies the NUL-terminated string at p, reading at most max+1
// bytes, so an unterminated or huge string costs no more than that.
func readCStr(p *C.char, max int) cstr {
	if p == nil {
		return cstr{null: true}
	}
	base := unsafe.Pointer(p)
	for n := 0; n <= max; n++ {
		if *(*byte)(unsafe.Add(base, n)) == 0 {
			return cstr{s: string(unsafe.Slice((*byte)(base), n))}
		}
	}
	return cstr{tooLong: true}
}

// readID reads an identifier string (cap KVH_MAX_ID_LEN).
func readID(p *C.char) cstr { return readCStr(p, maxIDLen) }

// readPath reads a path string (cap maxPathLen).
func readPath(p *C.char) cstr { return readCStr(p, maxPathLen) }

// copyToC writes src and a NUL into the C buffer dst of capacity cap, if it
// fits. It returns whether it did.
func copyToC(dst *C.char, cap C.size_t, src []byte) bool {
	if dst == nil || uint64(cap) < uint64(len(src))+1 {
		return false
	}
	out := unsafe.Slice((*byte)(unsafe.Pointer(dst)), len(src)+1)
	copy(out, src)
	out[len(src)] = 0
	return true
}
