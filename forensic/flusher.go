package forensic

import (
	"fmt"
	"os"
)

// flusher performs the writer goroutine's write(2) of each batch on a
// goroutine of its own, so that copying one batch into the page cache
// overlaps encoding and chaining the next one. At most one write is in
// flight: the writer goroutine hands a buffer over, keeps filling a second
// one, and collects the result (drain) before it hands over the next buffer
// and before anything that needs the bytes in the file: fsync, rotation, a
// checkpoint, a synchronous write, going idle and exiting.
type flusher struct {
	req   chan flushReq
	done  chan flushRes
	busy  bool
	spare []byte // the buffer of the last completed write, reused
	sent  int    // writes handed over (tests)
}

type flushReq struct {
	write func(*os.File, []byte) (int, error)
	f     *os.File
	b     []byte
}

type flushRes struct {
	b   []byte
	n   int
	err error
}

func newFlusher() *flusher {
	fl := &flusher{req: make(chan flushReq), done: make(chan flushRes, 1)}
	go func() {
		for r := range fl.req {
			n, err := r.write(r.f, r.b)
			fl.done <- flushRes{b: r.b, n: n, err: err}
		}
	}()
	return fl
}

// asyncMinBytes is the smallest batch handed to the flusher. Smaller ones
// are written at once: the hand-over costs two goroutine switches, worth it
// only when the copy it overlaps is long (a backlog, not a trickle). A
// variable so that tests can send every batch through the flusher.
var asyncMinBytes = 1 << 20

// writeOutAsync hands w.out to the flusher (after collecting the previous
// write) and continues with an empty buffer. A batch below asyncMinBytes is
// written synchronously, and so is every batch under an fsync policy other
// than none: there the fsync that follows a large batch waits for the write
// anyway (measured: no gain with interval, benchmarks/results/forensic.md).
// The bytes count in w.size from the hand-over on.
func (w *Writer) writeOutAsync() error {
	if err := w.drain(); err != nil {
		return err
	}
	if w.fl == nil || len(w.out) < asyncMinBytes || w.o.Fsync != FsyncNone {
		return w.writeOut()
	}
	w.size += int64(len(w.out))
	w.dirty = true
	w.fl.busy = true
	w.fl.sent++
	w.fl.req <- flushReq{write: w.writeFn, f: w.f, b: w.out}
	w.out, w.fl.spare = w.fl.spare[:0], nil
	return nil
}

// drain waits for the write in flight, if any, and reports its error.
func (w *Writer) drain() error {
	if w.fl == nil || !w.fl.busy {
		return nil
	}
	r := <-w.fl.done
	w.fl.busy = false
	w.fl.spare = r.b[:0]
	w.bytes.Add(uint64(r.n))
	if r.err != nil {
		w.size -= int64(len(r.b) - r.n)
		return fmt.Errorf("forensic: write %s: %w", w.path, r.err)
	}
	if r.n != len(r.b) { // os.File.Write reports a short write as an error; belt and braces
		w.size -= int64(len(r.b) - r.n)
		return fmt.Errorf("forensic: write %s: short write (%d of %d bytes)", w.path, r.n, len(r.b))
	}
	return nil
}

// stopFlusher collects the write in flight and ends the flusher goroutine.
func (w *Writer) stopFlusher() error {
	if w.fl == nil {
		return nil
	}
	err := w.drain()
	close(w.fl.req)
	w.fl = nil
	return err
}
