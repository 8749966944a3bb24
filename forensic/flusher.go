package forensic

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// flusher performs the writer goroutine's write(2) of each batch (and,
// under fsync interval, the routine fsync after it) on a goroutine of its
// own, so that copying one batch into the page cache and waiting for the
// disk overlap encoding and chaining the next one. At most one write is in
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
	syncs int    // of which with an fsync (tests)
	early int    // of which handed over in the middle of a batch (tests)
}

type flushReq struct {
	write func(*os.File, []byte) (int, error)
	sync  func(*os.File) error // non-nil: fsync after the write
	f     *os.File
	b     []byte
	off   int64  // the file offset the write starts at
	end   uint64 // with sync: the tickets the fsync makes durable
}

type flushRes struct {
	b   []byte
	n   int
	err error

	synced  bool // the request had sync and the write succeeded
	syncErr error
	syncDur time.Duration
	syncAt  time.Time
	end     uint64
}

func newFlusher() *flusher {
	fl := &flusher{req: make(chan flushReq), done: make(chan flushRes, 1)}
	go func() {
		for r := range fl.req {
			res := flushRes{b: r.b, end: r.end}
			res.n, res.err = r.write(r.f, r.b)
			if res.err == nil && r.sync == nil {
				writebackFn(r.f, r.off, res.n)
			}
			if res.err == nil && r.sync != nil {
				t := time.Now()
				res.synced, res.syncErr = true, r.sync(r.f)
				res.syncAt = time.Now()
				res.syncDur = res.syncAt.Sub(t)
			}
			if res.err == nil {
				dropBehind(r.f, r.off+int64(res.n))
			}
			fl.done <- res
		}
	}()
	return fl
}

// startWriteback asks the kernel to start writing [off, off+n) of f to
// disk now, without waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE,
// as RocksDB's bytes_per_sync does). It changes no durability promise: the
// fsync at rotation, Flush, Close or an interval still decides what is
// durable. It keeps that fsync short: without it the file's whole dirty
// range, up to MaxBytes, is written back while the writer waits in the
// rotation fsync. A hint: an error here is ignored (a failed writeback is
// reported by the next fsync; SYNC_FILE_RANGE_WRITE does not consume it).
// Never add the WAIT flags: waiting advances the file's writeback-error
// cursor, and the fsync that decides durability would then miss the error.
func startWriteback(f *os.File, off int64, n int) {
	if n > 0 {
		_ = unix.SyncFileRange(int(f.Fd()), off, int64(n), unix.SYNC_FILE_RANGE_WRITE)
	}
}

// writebackFn is startWriteback; tests replace it to see the ranges.
var writebackFn = startWriteback

// dropBehind drops the log's pages from the page cache once they are
// dropLag bytes behind the end of the file. An audit log is written once
// and read rarely, and on an LLM server host memory is wanted for KV
// offload, not for gigabytes of log (PostgreSQL drops its WAL segments the
// same way). It also lets the next pages the log needs be ones just freed:
// on the development VM a write(2) into newly allocated page-cache memory
// cost 3-27x one into recycled memory, and was a third of the writer's CPU.
// The kernel drops only clean pages, and a page is clean once the writeback
// startWriteback began is done, which may take longer than dropLag bytes of
// appends: so each call covers the last dropWindow bytes behind the lag
// again (the kernel skips what is no longer cached cheaply). The last
// dropLag bytes stay cached for readers that follow the log.
func dropBehind(f *os.File, end int64) {
	if to := end - dropLag; to > 0 {
		from := max(0, end-dropWindow)
		dropFn(f, from, to-from)
	}
}

// dropLag and dropWindow bound what dropBehind drops: [end-dropWindow,
// end-dropLag). Variables so that tests can change them.
var (
	dropLag    int64 = 16 << 20
	dropWindow int64 = 256 << 20
)

// dropPages is posix_fadvise(POSIX_FADV_DONTNEED) over [off, off+n): a
// hint, like startWriteback, whose error is ignored; it neither waits for
// writeback nor consumes a writeback error, which the next fsync reports.
func dropPages(f *os.File, off, n int64) {
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}

// dropFn is dropPages; tests replace it to see the ranges.
var dropFn = dropPages

// asyncMinBytes is the smallest batch handed to the flusher without an
// fsync. Smaller ones are written at once: the hand-over costs two goroutine
// switches, worth it only when the copy it overlaps is long (a backlog, not a
// trickle). A variable so that tests can send every batch through the flusher.
var asyncMinBytes = 1 << 20

// writeOutAsync hands w.out to the flusher and continues with an empty
// buffer; with sync the flusher fsyncs the file after the write, and drain
// makes the tickets up to end durable. Without sync, a batch below
// asyncMinBytes (and every batch under FsyncAlways) is written at once. The
// bytes count in w.size from the hand-over on.
func (w *Writer) writeOutAsync(sync bool, end uint64) error {
	if err := w.drain(); err != nil {
		return err
	}
	if w.fl == nil || (!sync && (len(w.out) < asyncMinBytes || w.o.Fsync == FsyncAlways)) {
		return w.writeOut()
	}
	req := flushReq{write: w.writeFn, f: w.f, b: w.out, off: w.size, end: end}
	w.size += int64(len(w.out))
	w.dirty = true
	w.fl.busy = true
	w.fl.sent++
	if sync {
		req.sync = w.syncFn
		w.fl.syncs++
	}
	w.fl.req <- req
	w.out, w.fl.spare = w.fl.spare[:0], nil
	return nil
}

// drain waits for the write in flight, if any, and reports its error.
func (w *Writer) drain() error {
	if w.fl == nil || !w.fl.busy {
		return nil
	}
	return w.collect(<-w.fl.done)
}

// handOffEarly (streamBatch, after each chunk) hands the chained part of a
// batch to the flusher when it has grown to asyncMinBytes and no write is
// in flight (a finished one is collected without waiting), so that the copy
// into the page cache overlaps chaining the rest of the batch rather than
// encoding the next one, which has a core of its own to use. No fsync rides
// on it: the batch's end still goes through writeOutAsync and the loop's
// fsync decision.
func (w *Writer) handOffEarly() error {
	if w.fl == nil || len(w.out) < asyncMinBytes || w.o.Fsync == FsyncAlways {
		return nil
	}
	if w.fl.busy {
		select {
		case r := <-w.fl.done:
			if err := w.collect(r); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	w.fl.early++
	return w.writeOutAsync(false, 0)
}

// collect takes the result of the write in flight.
func (w *Writer) collect(r flushRes) error {
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
	if r.synced {
		w.syncDone(r)
	}
	return nil
}

// syncDone records the outcome of an fsync the flusher ran after a write:
// the same accounting as sync, then either the tickets up to r.end are
// durable (nothing was written since the hand-over: drain comes before any
// write) or the file is marked failed, to be rotated by the loop, never
// synced again.
func (w *Writer) syncDone(r flushRes) {
	if w.o.OnFsync != nil {
		w.o.OnFsync(r.syncDur)
	}
	w.lastSync = r.syncAt
	if r.syncErr != nil {
		w.fsyncErrs.Add(1)
		w.syncFailed = true
		if w.o.OnError != nil {
			w.o.OnError(fmt.Errorf("forensic: fsync %s: %w: %w", w.path, ErrFsync, r.syncErr))
		}
		return
	}
	w.dirty = false
	w.mu.Lock()
	if r.end > w.durable {
		w.durable = r.end
	}
	w.cond.Broadcast()
	w.mu.Unlock()
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
