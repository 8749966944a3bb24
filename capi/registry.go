package main

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/kvhygiene/kvhygiene/core"
)

// Tracer tokens: the kvh_tracer* values handed to C. The top bytes hold
// tokenTag, the low 40 bits a sequence number that is never reused.
const (
	tokenTag    uint64 = 0x4B56480000000000 // "KVH" in the top three bytes
	tokenIDMask uint64 = 1<<40 - 1
)

// registry maps tracer tokens to live tracers. Reads take one atomic load and
// a lookup in an immutable map; open and close copy the map (they are rare).
type registry[T any] struct {
	mu   sync.Mutex // serializes writers
	live atomic.Pointer[map[uint64]T]
	next uint64 // last sequence number issued; guarded by mu
}

// add registers t and returns its token.
func (r *registry[T]) add(t T) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= tokenIDMask {
		return 0, &core.Error{Code: stInvalidArg, Msg: "too many tracers opened in this process"}
	}
	r.next++
	id := r.next
	old := r.live.Load()
	m := make(map[uint64]T, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[id] = t
	r.live.Store(&m)
	return tokenTag | id, nil
}

func lenOf[T any](m *map[uint64]T) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// get returns the tracer for token or an error with the right status:
// NULL -> KVH_E_NULL_ARG, closed -> KVH_E_CLOSED, anything else unknown ->
// KVH_E_INVALID_ARG.
func (r *registry[T]) get(token uint64) (T, error) {
	var zero T
	if token == 0 {
		return zero, &core.Error{Code: stNullArg, Msg: "tracer is NULL"}
	}
	id := token & tokenIDMask
	if m := r.live.Load(); m != nil && token&^tokenIDMask == tokenTag {
		if t, ok := (*m)[id]; ok {
			return t, nil
		}
	}
	return zero, r.unknown(token)
}

func (r *registry[T]) unknown(token uint64) error {
	id := token & tokenIDMask
	r.mu.Lock()
	issued := token&^tokenIDMask == tokenTag && id != 0 && id <= r.next
	r.mu.Unlock()
	if issued {
		return &core.Error{Code: stClosed, Msg: "tracer was closed"}
	}
	return &core.Error{Code: stInvalidArg, Msg: fmt.Sprintf("tracer %#x was not returned by kvh_tracer_open", token)}
}

// remove unregisters the tracer for token and returns it; a second remove
// of the same token reports KVH_E_CLOSED.
func (r *registry[T]) remove(token uint64) (T, error) {
	var zero T
	if token == 0 {
		return zero, &core.Error{Code: stNullArg, Msg: "tracer is NULL"}
	}
	r.mu.Lock()
	old := r.live.Load()
	id := token & tokenIDMask
	t, ok := zero, false
	if old != nil && token&^tokenIDMask == tokenTag {
		t, ok = (*old)[id]
	}
	if ok {
		m := make(map[uint64]T, len(*old))
		for k, v := range *old {
			if k != id {
				m[k] = v
			}
		}
		r.live.Store(&m)
	}
	r.mu.Unlock()
	if !ok {
		return zero, r.unknown(token)
	}
	return t, nil
}

// tracers holds every open tracer of the process.
var tracers registry[*core.Tracer]
