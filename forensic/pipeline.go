package forensic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	mrand "math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The writer's batch pipeline. The chain is sequential (each record holds
// the previous record's hash), but only the SHA-256 of each record must run
// in order. Large batches are therefore encoded canonically with the
// prev_hash and seq values left out (sorting, escaping, floats, UUIDs,
// timestamps) in parallel, and then chained in order:
//
//   - without a key, or with one and the two-lane hasher (SHA-NI),
//     streamBatch encodes chunks ahead on every core while the writer
//     chains the chunks already encoded, each line assembled in the output
//     buffer and hashed there (with a key, its hash and HMAC together);
//   - with a key but no SHA-NI, in three phases: parallel encoding; per record, in order,
//     the hash of prev + canonical streamed from the pieces, rotation and
//     bookkeeping; parallel assembly of the lines with their HMACs.
//
// The bytes are identical to the sequential encodeLine path (tested).

const pipelineMin = 64 // smaller batches use the sequential path

type preRec struct {
	buf        []byte // canonical with the two values left out
	cutA, cutB int
	seqd       [20]byte
	seqn       int
	prev       [64]byte
	prevn      int
	sum        [32]byte
	line       []byte
}

type encWorker struct {
	enc recordEncoder
	rng *mrand.ChaCha8
	mac hash.Hash
}

func (w *Writer) workers(n int) int {
	k := min(runtime.GOMAXPROCS(0), 8, n/pipelineMin+1)
	for len(w.encs) < k {
		var seed [32]byte
		for i := 0; i < 4; i++ {
			x := w.rng.Uint64()
			for j := 0; j < 8; j++ {
				seed[i*8+j] = byte(x >> (8 * j))
			}
		}
		e := &encWorker{rng: mrand.NewChaCha8(seed)}
		if k := w.macKey(); len(k) > 0 {
			e.mac = hmac.New(sha256.New, k)
		}
		w.encs = append(w.encs, e)
	}
	return k
}

// parallel runs fn(worker, i) for i in [lo, hi) on k workers: the calling
// goroutine and k-1 helpers take chunks of parChunk indexes from a shared
// counter until none are left. The caller working too, and the chunks being
// handed out as they are taken, matter on a machine with few cores: a helper
// that waits in a run queue behind the appending goroutine or the flusher
// would otherwise hold up a fixed half of the batch while a core idles.
func (w *Writer) parallel(lo, hi, k int, fn func(e *encWorker, i int)) {
	if k <= 1 || hi-lo < 2*pipelineMin {
		for i := lo; i < hi; i++ {
			fn(w.encs[0], i)
		}
		return
	}
	var next atomic.Int64
	next.Store(int64(lo))
	run := func(e *encWorker) {
		for {
			a := int(next.Add(parChunk)) - parChunk
			if a >= hi {
				return
			}
			for i, b := a, min(a+parChunk, hi); i < b; i++ {
				fn(e, i)
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(k - 1)
	for j := 1; j < k; j++ {
		go func(e *encWorker) {
			defer wg.Done()
			run(e)
		}(w.encs[j])
	}
	run(w.encs[0])
	wg.Wait()
}

// parChunk is the number of records a pipeline worker takes at a time
// (~50 us of encoding): small enough that the last chunk leaves little
// tail, large enough that the shared counter is touched rarely.
const parChunk = 128

func hashSafe(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return len(b) <= 64
}

// appendBatch appends a queued batch (sequentially when small).
func (w *Writer) appendBatch(recs []pending, fields []Field) error {
	if len(recs) < pipelineMin || !hashSafe(w.prev) {
		for i := range recs {
			p := &recs[i]
			if err := w.appendRecord(p.ev, fields[p.fi:p.fi+p.fn], time.Now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	}
	n := len(recs)
	w.pipelined.Add(uint64(n))
	k := w.workers(n)
	if cap(w.pre) < n {
		w.pre = append(w.pre[:cap(w.pre)], make([]preRec, n-cap(w.pre))...)
	}
	pre := w.pre[:n]
	kid, fse := w.kid, w.fseValue()
	encode := func(e *encWorker, i int) {
		r := &recs[i]
		p := &pre[i]
		p.buf, p.cutA, p.cutB = encodeCanon(p.buf[:0], &e.enc, e.rng, kid, fse, r.ev, fields[r.fi:r.fi+r.fn], time.Now().UnixNano(), nil, 0, true)
	}
	suffix := sufPlainLen
	if w.mac != nil {
		suffix = sufMacLen
	}
	if d := w.dualHasher(); d != nil || w.mac == nil {
		return w.streamBatch(pre, k, encode, d, suffix)
	}
	w.parallel(0, n, k, encode)
	for _, e := range w.encs[:k] {
		if e.enc.err != nil {
			return e.enc.err
		}
	}
	seg := 0
	var segBytes int64
	quote := []byte{'"'}
	for i := 0; i < n; i++ {
		p := &pre[i]
		lineLen := int64(len(p.buf) + 2 + len(w.prev) + len(strconv.AppendUint(p.seqd[:0], w.seq, 10)) - 1 + suffix + 1)
		if w.fileRecs > 0 && w.size+int64(len(w.out))+segBytes+lineLen > w.o.MaxBytes {
			w.finishSegment(pre, seg, i, k)
			segBytes = 0
			if err := w.rotateFull(); err != nil {
				return err
			}
			seg = i
			lineLen = int64(len(p.buf) + 2 + len(w.prev) + len(strconv.AppendUint(p.seqd[:0], w.seq, 10)) - 1 + suffix + 1)
		}
		p.seqn = len(strconv.AppendUint(p.seqd[:0], w.seq, 10))
		p.prevn = copy(p.prev[:], w.prev)
		w.sha.Reset()
		w.sha.Write(w.prev)
		w.sha.Write(p.buf[:p.cutA])
		w.sha.Write(quote)
		w.sha.Write(w.prev)
		w.sha.Write(quote)
		w.sha.Write(p.buf[p.cutA:p.cutB])
		w.sha.Write(p.seqd[:p.seqn])
		w.sha.Write(p.buf[p.cutB:])
		w.sha.Sum(p.sum[:0])
		if cap(w.prev) < 64 {
			w.prev = make([]byte, 64)
		}
		w.prev = w.prev[:64]
		hex.Encode(w.prev, p.sum[:])
		w.commitMeta(p.sum[:])
		segBytes += lineLen
	}
	w.finishSegment(pre, seg, n, k)
	for i := range pre {
		pre[i].line = pre[i].line[:0]
	}
	return nil
}

// finishSegment assembles (and HMACs) lines [lo, hi) in parallel and
// appends them to the output buffer in order.
func (w *Writer) finishSegment(pre []preRec, lo, hi, k int) {
	w.parallel(lo, hi, k, func(e *encWorker, i int) {
		p := &pre[i]
		b := p.line[:0]
		b = append(b, p.buf[:p.cutA]...)
		b = append(b, '"')
		b = append(b, p.prev[:p.prevn]...)
		b = append(b, '"')
		b = append(b, p.buf[p.cutA:p.cutB]...)
		b = append(b, p.seqd[:p.seqn]...)
		b = append(b, p.buf[p.cutB:len(p.buf)-1]...)
		canonEnd := len(b)
		b = append(b, sufCurr...)
		var hx [64]byte
		hex.Encode(hx[:], p.sum[:])
		b = append(b, hx[:]...)
		b = append(b, '"')
		if e.mac != nil {
			e.mac.Reset()
			e.mac.Write(p.prev[:p.prevn])
			e.mac.Write(b[:canonEnd])
			e.mac.Write([]byte{'}'})
			var ms [32]byte
			hex.Encode(hx[:], e.mac.Sum(ms[:0]))
			b = append(b, sufMac[1:]...)
			b = append(b, hx[:]...)
			b = append(b, '"')
		}
		b = append(b, '}', '\n')
		p.line = b
	})
	for i := lo; i < hi; i++ {
		w.out = append(w.out, pre[i].line...)
	}
}

// dualHasher returns the interleaved hash+HMAC state for the current MAC
// key (nil without SHA-NI, and nil when there is no key: one SHA-256 alone
// gains nothing from interleaving).
func (w *Writer) dualHasher() *sha2Mac {
	if !sha2xFast || sha2xOff.Load() || w.mac == nil {
		return nil
	}
	if w.dual == nil || w.dualFor != w.mac {
		// w.mac is replaced whenever the key changes (forward-secure
		// epochs): drop the old key's states with it
		if w.dual != nil {
			w.dual.wipe()
		}
		k := w.macKey()
		if len(k) == 0 {
			return nil
		}
		w.dual, w.dualFor = newSHA2Mac(k), w.mac
	}
	return w.dual
}

// streamBatch encodes and chains a batch at the same time. The writer
// goroutine and k-1 helpers take chunks of parChunk records, in order, from
// a shared counter and encode them; the writer chains the chunks in order
// as they become ready and, whenever the next one is not, encodes a chunk
// itself instead of waiting. So encoding runs ahead of the chain on the
// other cores while they are free, and the writer's core works on whichever
// stage is behind (with two phases, the core that was not chaining sat idle
// once the caller and the flusher had nothing left to do).
//
// A chunk whose encoding met a field list checkKeys refuses (AppendConst)
// stops the batch before that chunk is chained: the records before it are
// written, it and the rest are not.
func (w *Writer) streamBatch(pre []preRec, k int, encode func(*encWorker, int), d *sha2Mac, suffix int) error {
	n := len(pre)
	nch := (n + parChunk - 1) / parChunk
	if cap(w.chunkDone) < nch {
		w.chunkDone = make(chan int, nch)
		w.chunkReady = make([]bool, nch)
		w.chunkErr = make([]error, nch)
	}
	done, ready, errs := w.chunkDone, w.chunkReady[:nch], w.chunkErr[:nch]
	var next atomic.Int64
	// claim encodes the next unclaimed chunk; false when none is left.
	claim := func(e *encWorker) (int, bool) {
		c := int(next.Add(1)) - 1
		if c >= nch {
			return c, false
		}
		clean := e.enc.err == nil
		for i, end := c*parChunk, min((c+1)*parChunk, n); i < end; i++ {
			encode(e, i)
		}
		if clean && e.enc.err != nil {
			// an encoder's error is sticky: its first bad chunk is flagged,
			// and no earlier chunk of any encoder is bad without a flag
			errs[c] = e.enc.err
		}
		return c, true
	}
	var wg sync.WaitGroup
	wg.Add(k - 1)
	for j := 1; j < k; j++ {
		go func(e *encWorker) {
			defer wg.Done()
			for {
				c, ok := claim(e)
				if !ok {
					return
				}
				done <- c
			}
		}(w.encs[j])
	}
	err := func() error {
		for c := 0; c < nch; c++ {
			for !ready[c] {
				select {
				case x := <-done:
					ready[x] = true
				default:
					if x, ok := claim(w.encs[0]); ok {
						ready[x] = true
					} else {
						ready[<-done] = true // c is being encoded by a helper
					}
				}
			}
			if errs[c] != nil {
				return errs[c]
			}
			if err := w.chainBatch(pre[c*parChunk:min((c+1)*parChunk, n)], d, suffix); err != nil {
				return err
			}
			if err := w.handOffEarly(); err != nil {
				return err
			}
		}
		return nil
	}()
	next.Store(int64(nch)) // on an error, helpers claim nothing more
	wg.Wait()
	for len(done) > 0 {
		<-done
	}
	clear(ready)
	clear(errs)
	return err
}

// chainBatch chains encoded records in order: each line is assembled
// straight into the output buffer and hashed there, its hash and HMAC
// together on two lanes with d, its hash alone without a key (d nil).
func (w *Writer) chainBatch(pre []preRec, d *sha2Mac, suffix int) error {
	var seqd [20]byte
	var sum, mac [32]byte
	var hx [64]byte
	for i := range pre {
		p := &pre[i]
		seqs := strconv.AppendUint(seqd[:0], w.seq, 10)
		lineLen := int64(len(p.buf) + 2 + len(w.prev) + len(seqs) - 1 + suffix + 1)
		if w.fileRecs > 0 && w.size+int64(len(w.out))+lineLen > w.o.MaxBytes {
			if err := w.rotateFull(); err != nil {
				return err
			}
			seqs = strconv.AppendUint(seqd[:0], w.seq, 10)
		}
		start := len(w.out)
		b := append(w.out, p.buf[:p.cutA]...)
		b = append(b, '"')
		b = append(b, w.prev...)
		b = append(b, '"')
		b = append(b, p.buf[p.cutA:p.cutB]...)
		b = append(b, seqs...)
		b = append(b, p.buf[p.cutB:len(p.buf)-1]...)
		if d != nil {
			d.sumMacChain(&sum, &mac, w.prev, b[start:])
		} else {
			w.sha.Reset()
			w.sha.Write(w.prev)
			w.sha.Write(b[start:])
			w.sha.Write(closeBrace)
			w.sha.Sum(sum[:0])
		}
		b = append(b, sufCurr...)
		hexEncode32(&hx, &sum)
		b = append(b, hx[:]...)
		w.prev = append(w.prev[:0], hx[:]...)
		if d != nil {
			b = append(b, sufMac...)
			hexEncode32(&hx, &mac)
			b = append(b, hx[:]...)
		}
		b = append(b, '"', '}', '\n')
		w.out = b
		w.commitMeta(sum[:])
	}
	return nil
}
