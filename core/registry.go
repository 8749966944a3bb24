package core

import (
	"github.com/kvhygiene/kvhygiene/forensic"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Handle identifies a buffer: tracer tag (16 bits) | generation (20 bits) |
// slot index (28 bits). 0 is never valid (the tag is never 0). In the
// forensic log a handle is written as its decimal uint64 value.
type Handle uint64

const (
	idxBits  = 28
	genBits  = 20
	idxMask  = 1<<idxBits - 1
	genMask  = 1<<genBits - 1
	maxSlots = 1 << idxBits
	segShift = 12
	segSize  = 1 << segShift
)

func makeHandle(tag uint16, gen, idx uint32) Handle {
	return Handle(uint64(tag)<<(idxBits+genBits) | uint64(gen&genMask)<<idxBits | uint64(idx))
}

func (h Handle) tag() uint16 { return uint16(uint64(h) >> (idxBits + genBits)) }
func (h Handle) gen() uint32 { return uint32(uint64(h)>>idxBits) & genMask }
func (h Handle) idx() uint32 { return uint32(h) & idxMask }

// String is the decimal form used in the log.
func (h Handle) String() string { return strconv.FormatUint(uint64(h), 10) }

// State is kvh_state.
type State uint8

// Buffer states.
const (
	StateAllocated   State = 0
	StateBound       State = 1
	StateInUse       State = 2
	StateSanitizing  State = 3
	StateSanitized   State = 4
	StateFreed       State = 5
	StateQuarantined State = 6
)

var stateNames = [...]string{"allocated", "bound", "in_use", "sanitizing", "sanitized", "freed", "quarantined"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// slot flags
const (
	fLibOwned       = 1 << iota // ptr is library-owned host memory (ext.mem)
	fLocked                     // library-owned memory is mlock'ed
	fBusy                       // a sanitize is running or pending (async)
	fVerifiedSinceQ             // a passing verified sanitize happened while quarantined
	fSanitizedEver              // coverage has been attested at least once
	fHasTTL
	fPinned
)

// quarantine categories (also the metric label "reason")
const (
	qNone uint8 = iota
	qManual
	qTTL
	qReuse
	qIsolation
	qVerify
	qCoverage
)

var qReasonLabels = [...]string{"none", "manual", "ttl_expired", "reuse_limit_exceeded", "isolation_violation", "verification_failed", "coverage_below_threshold"}

// slot is one registry entry. It is kept small: the registry holds one per
// buffer ever live at the same time (see BenchmarkLiveBufferMemory).
type slot struct {
	mu       sync.Mutex
	gen      uint32
	ordinal  int32
	state    State
	flags    uint8
	device   uint8
	qreason  uint8
	ptr      uint64
	nbytes   uint64
	stream   uint64
	ttlBase  int64 // monotonic ns: allocation or last use
	ttl      int64 // ns; valid with fHasTTL
	reuse    int64
	maxReuse int64
	coverage float64
	// Identifiers are kept boxed (as the log needs them) as forensic.Text,
	// validated once at allocation, so a record costs neither an allocation
	// nor a UTF-8 scan for them; tenant and model boxes are interned per
	// tracer. The handle is logged as a forensic.Decimal (no formatting on
	// the caller's path, no string kept per live buffer), boxed once for
	// all the records of an allocation.
	tenantV  any // forensic.Text
	requestV any // forensic.Text
	modelV   any // forensic.Text
	handleV  any // forensic.Decimal of the current handle, boxed once per allocation
	ext      *slotExt
}

func (s *slot) tenant() string  { v, _ := s.tenantV.(forensic.Text); return string(v) }
func (s *slot) request() string { v, _ := s.requestV.(forensic.Text); return string(v) }
func (s *slot) model() string   { v, _ := s.modelV.(forensic.Text); return string(v) }

// streamID is the buffer's stream label ("" when none was given).
func (s *slot) streamID() string {
	if s.ext == nil {
		return ""
	}
	return s.ext.streamID
}

// setStreamID sets the stream label, in the extension: few buffers have one.
func (s *slot) setStreamID(id string) {
	if s.ext == nil {
		if id == "" {
			return
		}
		s.ext = &slotExt{}
	}
	s.ext.streamID = id
}

// slotExt holds what few buffers need.
type slotExt struct {
	streamID string       // stream label
	mem      *hostMem     // library-owned memory
	pending  *cudaPending // async CUDA sanitize
	done     chan struct{}
}

type segment [segSize]slot

// registry is a growable slot array: a directory of fixed-size segments
// published atomically, so lookups take no registry lock; each slot has its
// own mutex. allocMu guards only the free list and the high-water mark.
type registry struct {
	segs    atomic.Pointer[[]*segment]
	allocMu sync.Mutex
	hwm     uint32
	free    []uint32
}

// slotAt returns the slot for index i, or nil if it was never created.
func (r *registry) slotAt(i uint32) *slot {
	dir := r.segs.Load()
	if dir == nil {
		return nil
	}
	si := i >> segShift
	if int(si) >= len(*dir) {
		return nil
	}
	return &(*dir)[si][i&(segSize-1)]
}

// take reserves a slot index.
func (r *registry) take() (uint32, *slot, error) {
	r.allocMu.Lock()
	defer r.allocMu.Unlock()
	if n := len(r.free); n > 0 {
		i := r.free[n-1]
		r.free = r.free[:n-1]
		return i, r.slotAt(i), nil
	}
	if r.hwm >= maxSlots {
		return 0, nil, errorf(StatusNoMem, "registry full: %d buffers live", maxSlots)
	}
	i := r.hwm
	si := int(i >> segShift)
	var dir []*segment
	if p := r.segs.Load(); p != nil {
		dir = *p
	}
	if si >= len(dir) {
		nd := make([]*segment, si+1, max(2*len(dir), si+1))
		copy(nd, dir)
		nd[si] = new(segment)
		r.segs.Store(&nd)
	}
	r.hwm++
	return i, r.slotAt(i), nil
}

// put returns a slot index for reuse unless its generation is exhausted
// (then the slot is retired, so no handle can ever alias).
func (r *registry) put(i uint32, gen uint32) {
	if gen >= genMask {
		return
	}
	r.allocMu.Lock()
	r.free = append(r.free, i)
	r.allocMu.Unlock()
}

// each calls fn for every slot ever used (up to the high-water mark).
func (r *registry) each(fn func(idx uint32, s *slot)) {
	r.allocMu.Lock()
	n := r.hwm
	r.allocMu.Unlock()
	for i := uint32(0); i < n; i++ {
		fn(i, r.slotAt(i))
	}
}

// lookup resolves h and returns its slot locked. Errors: StatusUnknownHandle
// for 0, another tracer's handle or a handle never issued; StatusFreed for a
// freed or stale handle.
func (t *Tracer) lookup(h Handle) (*slot, error) {
	if h == 0 {
		return nil, errorf(StatusUnknownHandle, "handle 0 is never valid")
	}
	if h.tag() != t.tag {
		return nil, errorf(StatusUnknownHandle, "handle %d was not issued by this tracer", uint64(h))
	}
	gen := h.gen()
	s := t.reg.slotAt(h.idx())
	if s == nil || gen == 0 {
		return nil, errorf(StatusUnknownHandle, "handle %d was never issued", uint64(h))
	}
	s.mu.Lock()
	switch {
	case gen > s.gen:
		s.mu.Unlock()
		return nil, errorf(StatusUnknownHandle, "handle %d was never issued", uint64(h))
	case gen < s.gen || s.state == StateFreed:
		s.mu.Unlock()
		return nil, errorf(StatusFreed, "handle %d was freed", uint64(h))
	}
	return s, nil
}

func unsafeSizeofSlot() uintptr { return unsafe.Sizeof(slot{}) }
