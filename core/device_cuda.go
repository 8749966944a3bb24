package core

import (
	"errors"
	"strconv"
	"sync"

	"github.com/kvhygiene/kvhygiene/core/cudazero"
)

// cudaState loads the driver lazily (first CUDA buffer or pool) and caches
// device UUIDs per ordinal.
type cudaState struct {
	once  sync.Once
	drv   *cudaDriver
	err   error
	mu    sync.Mutex
	uuids map[int]string
}

// cudaDriver is the subset of *cudazero.Driver the tracer uses; tests may
// substitute a fake through cudaLoad.
type cudaDriver interface {
	ValidateRange(ordinal int, r cudazero.Range) error
	CheckStreamOn(ordinal int, stream uint64) error
	ZeroAsync(ordinal int, stream uint64, ranges []cudazero.Range, verify, doublePass bool) (cudaOp, error)
	ZeroPoolAsync(ordinal int, stream uint64, l *cudazero.PoolLayout, blocks []uint32, verify bool) (cudaOp, error)
	DeviceUUID(ordinal int) (string, error)
}

// cudaOp is the subset of *cudazero.Op the tracer uses.
type cudaOp interface {
	Wait() (uint64, error)
}

type realDriver struct{ d *cudazero.Driver }

func (r realDriver) ValidateRange(o int, rg cudazero.Range) error { return r.d.ValidateRange(o, rg) }
func (r realDriver) CheckStreamOn(o int, s uint64) error          { return r.d.CheckStreamOn(o, s) }
func (r realDriver) DeviceUUID(o int) (string, error)             { return r.d.DeviceUUID(o) }
func (r realDriver) ZeroAsync(o int, s uint64, rs []cudazero.Range, v, dp bool) (cudaOp, error) {
	op, err := r.d.ZeroAsync(o, s, rs, v, dp)
	if err != nil {
		return nil, err
	}
	return op, nil
}

func (r realDriver) ZeroPoolAsync(o int, s uint64, l *cudazero.PoolLayout, bs []uint32, v bool) (cudaOp, error) {
	op, err := r.d.ZeroPoolLayoutAsync(o, s, l, bs, v)
	if err != nil {
		return nil, err
	}
	return op, nil
}

// cudaLoad loads the driver; a package variable so tests can inject a fake.
var cudaLoad = func() (cudaDriver, error) {
	d, err := cudazero.Load()
	if err != nil {
		return nil, err
	}
	return realDriver{d}, nil
}

// cudaPending is an enqueued async sanitize.
type cudaPending struct {
	op      cudaOp
	start   int64
	verify  VerifyMode
	wasQ    bool
	ordinal int
}

func (t *Tracer) driver() (cudaDriver, error) {
	t.cuda.once.Do(func() {
		d, err := cudaLoad()
		if err != nil {
			t.cuda.err = cudaErr("load CUDA driver", err)
			return
		}
		t.cuda.drv = &d
	})
	if t.cuda.err != nil {
		return nil, t.cuda.err
	}
	return *t.cuda.drv, nil
}

// cudaErr maps cudazero errors to statuses: no driver -> StatusUnsupported,
// invalid range -> StatusInvalidArg, stream capture -> StatusState, a CUDA
// error -> StatusDevice with its name.
func cudaErr(op string, err error) error {
	var ce *cudazero.Error
	switch {
	case errors.Is(err, cudazero.ErrNoDriver):
		return errorf(StatusUnsupported, "no CUDA driver: %s: %v", op, err)
	case errors.Is(err, cudazero.ErrInvalidRange):
		return errorf(StatusInvalidArg, "%s: %v", op, err)
	case errors.Is(err, cudazero.ErrCapturing):
		return errorf(StatusState, "%s: stream is being captured into a CUDA graph: %v", op, err)
	case errors.As(err, &ce):
		return errorf(StatusDevice, "%s: %s: %v", op, ce.Name, err)
	}
	return errorf(StatusDevice, "%s: %v", op, err)
}

func (t *Tracer) cudaValidate(ordinal int, ptr, n uint64) error {
	d, err := t.driver()
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := d.ValidateRange(ordinal, cudazero.Range{Ptr: ptr, Len: n}); err != nil {
		return cudaErr("validate device range 0x"+strconv.FormatUint(ptr, 16)+"+"+strconv.FormatUint(n, 10), err)
	}
	return nil
}

func (t *Tracer) deviceUUID(d cudaDriver, ordinal int) string {
	t.cuda.mu.Lock()
	defer t.cuda.mu.Unlock()
	if u, ok := t.cuda.uuids[ordinal]; ok {
		return u
	}
	u, err := d.DeviceUUID(ordinal)
	if err != nil {
		u = "unknown"
	}
	if t.cuda.uuids == nil {
		t.cuda.uuids = map[int]string{}
	}
	t.cuda.uuids[ordinal] = u
	return u
}

// sanitizeCUDA enqueues ZeroAsync on the buffer's (or the overridden)
// stream; s is locked and not busy.
func (t *Tracer) sanitizeCUDA(h Handle, s *slot, p sanPlan) (float64, error) {
	d, err := t.driver()
	if err != nil {
		return 0, err
	}
	// ZeroAsync refuses a capturing stream before it enqueues anything; an
	// empty buffer enqueues nothing, so its stream is checked here, in a
	// context of the buffer's own device.
	if s.nbytes == 0 {
		if err := d.CheckStreamOn(int(s.ordinal), p.stream); err != nil {
			return 0, cudaErr("sanitize", err)
		}
	}
	wasQ := s.state == StateQuarantined
	start := t.now()
	var op cudaOp
	if s.nbytes > 0 {
		op, err = d.ZeroAsync(int(s.ordinal), p.stream, []cudazero.Range{{Ptr: s.ptr, Len: s.nbytes}}, p.verify != VerifyNone, p.doublePass)
		if err != nil {
			return 0, cudaErr("sanitize: enqueue zeroization", err)
		}
	}
	if !wasQ {
		s.state = StateSanitizing
	}
	s.flags |= fBusy
	if s.ext == nil {
		s.ext = &slotExt{}
	}
	s.ext.pending = &cudaPending{op: op, start: start, verify: p.verify, wasQ: wasQ, ordinal: int(s.ordinal)}
	fs := baseFields(nil, h, s)
	fs = append(fs,
		fieldDevice(s), fieldStreamID(s),
		fieldKV("stream", p.stream),
		fieldKV("verify", p.verify.value()),
		fieldKV("double_pass", p.doublePass),
		fieldKV("async", p.async),
	)
	if err := t.append("sanitize_start", fs); err != nil {
		return 0, err
	}
	if p.async {
		return 0, nil
	}
	return t.finishCUDA(h, s)
}

// finishCUDA waits for the pending op (s locked) and records the result.
// Other callers of Wait block on ext.done meanwhile.
func (t *Tracer) finishCUDA(h Handle, s *slot) (float64, error) {
	pd := s.ext.pending
	s.ext.pending = nil
	done := make(chan struct{})
	s.ext.done = done
	var nz uint64
	var werr error
	if pd.op != nil {
		s.mu.Unlock()
		nz, werr = pd.op.Wait()
		s.mu.Lock()
	}
	s.ext.done = nil
	close(done)
	s.flags &^= fBusy
	d, _ := t.driver()
	uuid := "unknown"
	if d != nil {
		uuid = t.deviceUUID(d, pd.ordinal)
	}
	if werr != nil {
		// The result is unknown: nothing was proven.
		res := verifyResult{coverage: 0, failed: true, nonzero: s.nbytes}
		_ = t.finishSanitize(h, s, res, pd.verify, t.now()-pd.start, pd.wasQ, uuid, DeviceCUDA)
		return 0, cudaErr("sanitize: wait", werr)
	}
	res := verifyResult{coverage: 0}
	switch {
	case s.nbytes == 0:
		res.coverage = 100
	case pd.verify != VerifyNone:
		res.coverage, res.nonzero, res.failed = pct(s.nbytes, nz), nz, nz != 0
	}
	err := t.finishSanitize(h, s, res, pd.verify, t.now()-pd.start, pd.wasQ, uuid, DeviceCUDA)
	return res.coverage, err
}

// poolReleaseCUDAShaped enqueues one ZeroPoolAsync for the blocks ids of p:
// the pool's region table and the block ids go to the device and one kernel
// launch (zero, then read back when verifying) covers every (region, block) pair, so the
// host cost does not grow with regions x blocks. The layout was validated
// when the pool was registered (poolValidateCUDA over each region's span)
// and ids were checked against the pool's block count by the caller; the
// stream is checked for capture by ZeroPoolAsync. total is the bytes
// released: len(ids) * the sum of the regions' block_bytes.
func (t *Tracer) poolReleaseCUDAShaped(p *pool, ids []uint32, verify bool) (op cudaOp, total uint64, err error) {
	d, err := t.driver()
	if err != nil {
		return nil, 0, err
	}
	op, err = d.ZeroPoolAsync(p.ordinal, p.stream, p.layout, ids, verify)
	if err != nil {
		return nil, 0, cudaErr("pool_release: enqueue zeroization", err)
	}
	return op, uint64(len(ids)) * p.perBlock, nil
}

func (t *Tracer) poolValidateCUDA(ordinal int, r cudazero.Range) error {
	d, err := t.driver()
	if err != nil {
		return err
	}
	if err := d.ValidateRange(ordinal, r); err != nil {
		return cudaErr("pool_register: region 0x"+strconv.FormatUint(r.Ptr, 16)+"+"+strconv.FormatUint(r.Len, 10)+" is not inside one device allocation", err)
	}
	return nil
}

// cudaBatchItem is one buffer of a batched device sanitize.
type cudaBatchItem struct {
	i     int // index in the caller's handle list
	h     Handle
	s     *slot
	wasQ  bool
	prev  State
	start bool // sanitize_start logged, fBusy set
}

// sanitizeBatchCUDA sanitizes synchronously, with one ZeroAsync launch for
// all the buffers of one (ordinal, stream) group. When the launch reports
// non-zero bytes, each buffer is re-zeroized and verified on its own so the
// failure is attributed to the right buffer(s).
func (t *Tracer) sanitizeBatchCUDA(items []cudaBatchItem, p sanPlan, ordinal int, stream uint64, out []float64, errs []error) {
	fail := func(err error) {
		for _, it := range items {
			if errs[it.i] == nil {
				errs[it.i] = err
			}
		}
	}
	d, err := t.driver()
	if err != nil {
		fail(err)
		return
	}
	if err := d.CheckStreamOn(ordinal, stream); err != nil {
		fail(cudaErr("sanitize_many", err))
		return
	}
	start := t.now()
	var ranges []cudazero.Range
	for k := range items {
		it := &items[k]
		s, err := t.lookup(it.h)
		if err != nil {
			errs[it.i] = err
			continue
		}
		if s.flags&fBusy != 0 {
			s.mu.Unlock()
			errs[it.i] = errorf(StatusPending, "sanitize: buffer %d already has a sanitize in progress", uint64(it.h))
			continue
		}
		it.s, it.wasQ, it.prev, it.start = s, s.state == StateQuarantined, s.state, true
		if !it.wasQ {
			s.state = StateSanitizing
		}
		s.flags |= fBusy
		fs := baseFields(nil, it.h, s)
		fs = append(fs, fieldDevice(s), fieldStreamID(s), fieldKV("stream", stream),
			fieldKV("verify", p.verify.value()), fieldKV("double_pass", p.doublePass), fieldKV("batch", len(items)))
		errs[it.i] = t.append("sanitize_start", fs)
		if s.nbytes > 0 {
			ranges = append(ranges, cudazero.Range{Ptr: s.ptr, Len: s.nbytes})
		}
		s.mu.Unlock()
	}
	verify := p.verify != VerifyNone
	var nz uint64
	var werr error
	if len(ranges) > 0 {
		op, err := d.ZeroAsync(ordinal, stream, ranges, verify, p.doublePass)
		if err != nil {
			// nothing was enqueued: restore the buffers
			for _, it := range items {
				if it.start {
					it.s.mu.Lock()
					it.s.flags &^= fBusy
					it.s.state = it.prev
					it.s.mu.Unlock()
					errs[it.i] = cudaErr("sanitize_many: enqueue zeroization", err)
				}
			}
			return
		}
		nz, werr = op.Wait()
	}
	uuid := t.deviceUUID(d, ordinal)
	for _, it := range items {
		if !it.start {
			continue
		}
		s := it.s
		var res verifyResult
		switch {
		case werr != nil:
			res = verifyResult{failed: true, nonzero: s.nbytes}
		case s.nbytes == 0:
			res.coverage = 100
		case !verify:
		case nz == 0:
			res.coverage = 100
		default:
			// attribute: this buffer alone, zeroized and verified again
			n, err := t.zeroOneCUDA(d, ordinal, stream, s, p.doublePass)
			if err != nil {
				res = verifyResult{failed: true, nonzero: s.nbytes}
				werr = err
			} else {
				res = verifyResult{coverage: pct(s.nbytes, n), nonzero: n, failed: n != 0}
			}
		}
		s.mu.Lock()
		s.flags &^= fBusy
		err := t.finishSanitize(it.h, s, res, p.verify, t.now()-start, it.wasQ, uuid, DeviceCUDA)
		s.mu.Unlock()
		switch {
		case werr != nil && errs[it.i] == nil:
			errs[it.i] = cudaErr("sanitize_many: wait", werr)
		case err != nil && errs[it.i] == nil:
			errs[it.i] = err
		}
		out[it.i] = res.coverage
	}
}

func (t *Tracer) zeroOneCUDA(d cudaDriver, ordinal int, stream uint64, s *slot, doublePass bool) (uint64, error) {
	op, err := d.ZeroAsync(ordinal, stream, []cudazero.Range{{Ptr: s.ptr, Len: s.nbytes}}, true, doublePass)
	if err != nil {
		return 0, err
	}
	return op.Wait()
}
