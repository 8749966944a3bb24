package cpuzero

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"
)

// FaultError is a memory fault (SIGSEGV or SIGBUS) taken by a kernel on a range that is
// not mapped, or not writable, in this process: caller memory that was unmapped or
// protected behind the library's back.
type FaultError struct {
	Addr uintptr // the faulting address
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("cpuzero: memory fault at %#x (the range is not mapped or not writable)", e.Addr)
}

// Guard runs f and turns a memory fault taken in it (or in a worker goroutine of Zero,
// IsZero or NonZeroBytes that f called) into a *FaultError instead of a crash of the
// process. Other panics propagate. The kernels keep no state of their own, so the
// package stays usable after a fault; what the caller was doing with the range is the
// caller's to undo.
func Guard(f func()) (err error) {
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	defer func() {
		if r := recover(); r != nil {
			fe := asFault(r)
			if fe == nil {
				panic(r)
			}
			err = fe
		}
	}()
	f()
	return nil
}

// asFault returns the fault r stands for, or nil if r is another panic.
func asFault(r any) *FaultError {
	switch v := r.(type) {
	case *FaultError:
		return v
	case interface{ Addr() uintptr }: // the runtime.Error of debug.SetPanicOnFault
		return &FaultError{Addr: v.Addr()}
	}
	return nil
}

// FaultSlot collects the first memory fault of worker goroutines started with GoGuarded.
type FaultSlot struct{ p atomic.Pointer[FaultError] }

// GoGuarded runs f on a new goroutine under Guard, then calls done; a fault is kept in
// slot (the first one wins) for the waiting goroutine to Raise.
func GoGuarded(slot *FaultSlot, f func(), done func()) {
	go func() {
		defer done()
		if err := Guard(f); err != nil {
			slot.p.CompareAndSwap(nil, err.(*FaultError))
		}
	}()
}

// Raise re-raises the collected fault, if any, as a panic in the calling goroutine, where
// a Guard turns it into an error (without one the host's fault handling applies, as for a
// fault in that goroutine itself).
func (s *FaultSlot) Raise() {
	if e := s.p.Load(); e != nil {
		panic(e)
	}
}
