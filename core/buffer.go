package core

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/kvhygiene/kvhygiene/forensic"
)

// AllocDesc describes a region to tag (kvh_alloc_desc).
type AllocDesc struct {
	Ptr, NBytes uint64 // Ptr 0 on CPU = library-owned hygienic memory
	Device      Device
	Ordinal     int
	Stream      uint64
	Tenant      string // required
	Request     string // required
	Model       string // required
	Framework   string // optional
	DType       string // optional; "" = "uint8"
	StreamID    string // optional label, recorded as the seed's "stream_id"
	Shape       []int64
	HasTTL      bool
	TTLSec      float64
	HasMaxReuse bool
	MaxReuse    int64
	Pinned      bool
}

// SanitizeOpts are kvh_sanitize_opts in Go form.
type SanitizeOpts struct {
	Async      bool
	Verify     VerifyMode
	DoublePass int // 0 = Config.DoublePassDefault, 1 on, -1 off
	Samples    int // 0 = Config.VerifySamplesDefault
	UseStream  bool
	Stream     uint64
}

// BufferInfo describes a buffer (kvh_buffer_info).
type BufferInfo struct {
	State        State
	Ptr          uint64
	NBytes       uint64
	Device       Device
	Ordinal      int
	Stream       uint64
	CoveragePct  float64
	ReuseCount   int64
	MaxReuse     int64
	LibraryOwned bool
	Locked       bool
	Tenant       string
	Request      string
	Model        string
}

const maxShapeLen = 64

// Allocate tags a region (or maps library-owned memory when Ptr is 0 on the
// CPU) and logs "allocate". Errors: StatusInvalidID for bad ids,
// StatusInvalidArg for bad sizes / device / overflow, StatusNoMem when
// library-owned memory cannot be mapped, StatusUnsupported / StatusDevice
// for CUDA failures.
func (t *Tracer) Allocate(d AllocDesc) (Handle, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	if err := ValidateID("tenant_id", d.Tenant); err != nil {
		return 0, err
	}
	if err := ValidateID("request_id", d.Request); err != nil {
		return 0, err
	}
	if err := ValidateID("model_id", d.Model); err != nil {
		return 0, err
	}
	if err := validateOptID("framework", d.Framework); err != nil {
		return 0, err
	}
	if err := validateOptID("dtype", d.DType); err != nil {
		return 0, err
	}
	if err := validateOptID("stream_id", d.StreamID); err != nil {
		return 0, err
	}
	if len(d.Shape) > maxShapeLen {
		return 0, errorf(StatusInvalidArg, "shape has %d dimensions, more than %d", len(d.Shape), maxShapeLen)
	}
	for i, x := range d.Shape {
		if x < 0 {
			return 0, errorf(StatusInvalidArg, "shape[%d] = %d is negative", i, x)
		}
	}
	if d.HasTTL && (math.IsNaN(d.TTLSec) || math.IsInf(d.TTLSec, 0)) {
		return 0, errorf(StatusInvalidArg, "ttl_sec %v is not finite", d.TTLSec)
	}
	if d.Ptr != 0 {
		if _, carry := bits.Add64(d.Ptr, d.NBytes, 0); carry != 0 {
			return 0, errorf(StatusInvalidArg, "ptr 0x%x + nbytes %d overflows", d.Ptr, d.NBytes)
		}
	}
	var mem *hostMem
	switch d.Device {
	case DeviceCPU:
		if d.Ordinal != 0 {
			return 0, errorf(StatusInvalidArg, "device_ordinal %d must be 0 on the CPU", d.Ordinal)
		}
		if d.Ptr == 0 && d.NBytes > 0 {
			if mem = t.hostCache.get(d.NBytes); mem == nil {
				var err error
				if mem, err = mapHost(d.NBytes); err != nil {
					return 0, err
				}
			}
		}
	case DeviceCUDA:
		if d.Ordinal < 0 || d.Ordinal > math.MaxInt32 {
			return 0, errorf(StatusInvalidArg, "device_ordinal %d is negative", d.Ordinal)
		}
		if d.Ptr == 0 {
			return 0, errorf(StatusInvalidArg, "ptr 0 on a CUDA device: the library does not allocate device memory")
		}
		if err := t.cudaValidate(d.Ordinal, d.Ptr, d.NBytes); err != nil {
			return 0, err
		}
	default:
		return 0, errorf(StatusInvalidArg, "device %d is not a kvh_device", d.Device)
	}

	idx, s, err := t.reg.take()
	if err != nil {
		if mem != nil {
			mem.zeroAndRelease()
		}
		return 0, err
	}
	now := t.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	h := makeHandle(t.tag, s.gen, idx)
	s.state = StateAllocated
	s.flags = 0
	s.qreason = qNone
	s.device = uint8(d.Device)
	s.ordinal = int32(d.Ordinal)
	s.ptr, s.nbytes, s.stream = d.Ptr, d.NBytes, d.Stream
	s.ttlBase = now
	s.reuse = 0
	s.coverage = 0
	s.tenantV = t.intern(d.Tenant)
	s.requestV = forensic.Text(d.Request)
	s.handleV = forensic.Decimal(h)
	s.modelV = t.intern(d.Model)
	s.ext = nil
	s.setStreamID(d.StreamID)
	ttl := any(nil)
	if d.HasTTL || t.cfg.HasDefaultTTL {
		sec := t.cfg.DefaultTTLSec
		if d.HasTTL {
			sec = d.TTLSec
		}
		s.flags |= fHasTTL
		s.ttl = ttlNanos(sec)
		ttl = sec
	}
	s.maxReuse = t.cfg.DefaultMaxReuse
	if d.HasMaxReuse {
		s.maxReuse = d.MaxReuse
	}
	if d.Pinned {
		s.flags |= fPinned
	}
	if mem != nil {
		s.ptr = mem.addr()
		s.flags |= fLibOwned
		if mem.locked {
			s.flags |= fLocked
		}
		if s.ext == nil {
			s.ext = &slotExt{}
		}
		s.ext.mem = mem
	} else if d.Ptr == 0 && d.Device == DeviceCPU {
		s.flags |= fLibOwned // zero-length library-owned buffer: nothing mapped
	}
	dtype := boxUint8 // validated above: logged as forensic.Text
	if d.DType != "" {
		dtype = forensic.Text(d.DType)
	}
	shape := d.Shape
	if shape == nil {
		shape = []int64{int64(d.NBytes)}
	} else {
		shape = append([]int64(nil), shape...)
	}
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs,
		forensic.Field{Key: "device", Value: deviceName(s.device, s.ordinal)},
		forensic.Field{Key: "shape", Value: shape},
		forensic.Field{Key: "dtype", Value: dtype},
		forensic.Field{Key: "ptr", Value: s.ptr},
		forensic.Field{Key: "nbytes", Value: s.nbytes},
		forensic.Field{Key: "stream_id", Value: optString(d.StreamID)},
		forensic.Field{Key: "pinned", Value: d.Pinned},
		forensic.Field{Key: "ttl_sec", Value: ttl},
		forensic.Field{Key: "max_reuse", Value: s.maxReuse},
	)
	if d.Framework != "" {
		fs = append(fs, forensic.Field{Key: "framework", Value: d.Framework})
	}
	if d.Device == DeviceCUDA {
		fs = append(fs, forensic.Field{Key: "stream", Value: d.Stream})
	}
	if s.flags&fLibOwned != 0 {
		fs = append(fs, forensic.Field{Key: "library_owned", Value: true})
		if mem != nil {
			fs = append(fs, forensic.Field{Key: "mlock", Value: mem.locked})
			if !mem.locked {
				fs = append(fs, forensic.Field{Key: "mlock_error", Value: mem.lockErr})
			}
		}
	}
	t.m.allocations.Add(1)
	t.m.tenantAllocInc(d.Tenant)
	return h, t.append("allocate", fs)
}

func ttlNanos(sec float64) int64 {
	ns := sec * 1e9
	switch {
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= 0:
		return 0
	}
	return int64(ns)
}

// checkTenant enforces tenant binding: a named tenant other than the owner
// quarantines the buffer, logs isolation_violation and fails.
func (t *Tracer) checkTenant(h Handle, s *slot, tenant, op string) error {
	if tenant == "" || tenant == s.tenant() {
		return nil
	}
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs,
		forensic.Field{Key: "attacker_tenant", Value: tenant},
		forensic.Field{Key: "target_tenant", Value: s.tenantV},
		forensic.Field{Key: "operation", Value: op},
	)
	t.m.isolation.Inc()
	lerr := t.append("isolation_violation", fs)
	qerr := t.quarantineLocked(h, s, qIsolation, "isolation_violation")
	if lerr == nil {
		lerr = qerr
	}
	if lerr != nil {
		return lerr
	}
	return errorf(StatusIsolation, "%s: tenant %q does not own buffer %d (owner %q); buffer quarantined", op, tenant, uint64(h), s.tenant())
}

// quarantineLocked moves s to quarantined (sticky) and logs the record.
func (t *Tracer) quarantineLocked(h Handle, s *slot, cat uint8, reason string) error {
	s.state = StateQuarantined
	s.qreason = cat
	s.flags &^= fVerifiedSinceQ
	t.m.quarantine(cat)
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs, forensic.Field{Key: "reason", Value: reason})
	return t.append("quarantine", fs)
}

// usable checks that s may be used (bind / write / reuse).
func (t *Tracer) usable(h Handle, s *slot, op string) error {
	if s.flags&fBusy != 0 {
		return errorf(StatusPending, "%s: buffer %d has a sanitize in progress; wait for it", op, uint64(h))
	}
	if s.state == StateQuarantined {
		if s.qreason == qTTL {
			return errorf(StatusPolicy, "%s: buffer %d ttl expired (quarantined)", op, uint64(h))
		}
		return errorf(StatusQuarantined, "%s: buffer %d is quarantined", op, uint64(h))
	}
	return nil
}

// checkTTL quarantines an expired buffer.
func (t *Tracer) checkTTL(h Handle, s *slot, now int64, op string) error {
	if s.flags&fHasTTL == 0 || now-s.ttlBase < s.ttl {
		return nil
	}
	if err := t.quarantineLocked(h, s, qTTL, "ttl_expired"); err != nil {
		return err
	}
	return errorf(StatusPolicy, "%s: buffer %d ttl expired; quarantined", op, uint64(h))
}

// Bind records a stream label and moves allocated/sanitized buffers to
// bound (an in_use buffer stays in_use). tenant "" is unchecked.
func (t *Tracer) Bind(h Handle, tenant, streamID string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if err := validateOptID("tenant_id", tenant); err != nil {
		return err
	}
	if err := validateOptID("stream_id", streamID); err != nil {
		return err
	}
	s, err := t.lookup(h)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := t.checkTenant(h, s, tenant, "bind"); err != nil {
		return err
	}
	if err := t.usable(h, s, "bind"); err != nil {
		return err
	}
	if s.state != StateInUse {
		s.state = StateBound
	}
	s.setStreamID(streamID)
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs, forensic.Field{Key: "stream_id", Value: optString(streamID)})
	return t.append("bind", fs)
}

// beginUse is the common start of MarkInUse and MarkReuse: it checks the
// tenant id, looks the buffer up, and enforces tenant binding, state and TTL.
// On success the slot is returned locked, with the current time.
func (t *Tracer) beginUse(h Handle, tenant, op string) (*slot, int64, error) {
	if err := validateOptID("tenant_id", tenant); err != nil {
		return nil, 0, err
	}
	s, err := t.lookup(h)
	if err != nil {
		return nil, 0, err
	}
	now := t.now()
	err = t.checkTenant(h, s, tenant, op)
	if err == nil {
		err = t.usable(h, s, op)
	}
	if err == nil {
		err = t.checkTTL(h, s, now, op)
	}
	if err != nil {
		s.mu.Unlock()
		return nil, 0, err
	}
	return s, now, nil
}

// MarkInUse moves the buffer to in_use and logs "write". An expired TTL
// quarantines it (StatusPolicy).
func (t *Tracer) MarkInUse(h Handle, tenant string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	s, now, err := t.beginUse(h, tenant, "mark_in_use")
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.state = StateInUse
	if t.cfg.TTLMode == TTLFromLastUse {
		s.ttlBase = now
	}
	fs := make([]forensic.Field, 0, 24)
	return t.append("write", baseFields(fs, h, s))
}

// MarkReuse counts a reuse and logs "reuse"; exceeding max_reuse (or an
// expired TTL) quarantines the buffer (StatusPolicy).
func (t *Tracer) MarkReuse(h Handle, tenant string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	s, now, err := t.beginUse(h, tenant, "mark_reuse")
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.reuse++
	t.m.reuse.Add(1)
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs,
		forensic.Field{Key: "reuse_count", Value: s.reuse},
		forensic.Field{Key: "max_reuse", Value: s.maxReuse},
	)
	if err := t.append("reuse", fs); err != nil {
		return err
	}
	if s.maxReuse >= 0 && s.reuse > s.maxReuse {
		if err := t.quarantineLocked(h, s, qReuse, "reuse_limit_exceeded"); err != nil {
			return err
		}
		return errorf(StatusPolicy, "mark_reuse: buffer %d reused %d times, max_reuse %d; quarantined", uint64(h), s.reuse, s.maxReuse)
	}
	s.state = StateInUse
	if t.cfg.TTLMode == TTLFromLastUse {
		s.ttlBase = now
	}
	return nil
}

// sanPlan is a resolved sanitize request.
type sanPlan struct {
	verify     VerifyMode
	samples    int
	doublePass bool
	async      bool
	stream     uint64
}

func (t *Tracer) plan(o SanitizeOpts) (sanPlan, error) {
	p := sanPlan{verify: o.Verify, samples: o.Samples, async: o.Async}
	switch o.Verify {
	case VerifyDefault:
		p.verify = t.cfg.VerifyDefault
	case VerifyNone, VerifySampled, VerifyFull:
	default:
		return p, errorf(StatusInvalidArg, "verify %d is not a kvh_verify_mode", o.Verify)
	}
	if o.Samples < 0 || o.Samples > maxVerifySamples {
		return p, errorf(StatusInvalidArg, "samples %d is outside 0..%d", o.Samples, maxVerifySamples)
	}
	if p.samples == 0 {
		p.samples = t.cfg.VerifySamplesDefault
	}
	switch {
	case o.DoublePass > 0:
		p.doublePass = true
	case o.DoublePass < 0:
		p.doublePass = false
	default:
		p.doublePass = t.cfg.DoublePassDefault
	}
	return p, nil
}

// Sanitize zeroizes the buffer, verifies and attests coverage (percent).
// CPU buffers complete synchronously even with Async. A CUDA buffer with
// Async returns 0 at once; Wait completes it. A verification failure
// quarantines the buffer and returns StatusVerify with the coverage.
// Coverage is verified-zero bytes / bytes; VerifyNone attests 0 (nothing
// was proven); a zero-length buffer attests 100.
func (t *Tracer) Sanitize(h Handle, o SanitizeOpts) (float64, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	p, err := t.plan(o)
	if err != nil {
		return 0, err
	}
	return t.sanitize(h, p, o)
}

func (t *Tracer) sanitize(h Handle, p sanPlan, o SanitizeOpts) (float64, error) {
	s, err := t.lookup(h)
	if err != nil {
		return 0, err
	}
	if s.flags&fBusy != 0 {
		s.mu.Unlock()
		return 0, errorf(StatusPending, "sanitize: buffer %d already has a sanitize in progress", uint64(h))
	}
	p.stream = s.stream
	if o.UseStream {
		p.stream = o.Stream
	}
	if Device(s.device) == DeviceCUDA {
		defer s.mu.Unlock()
		return t.sanitizeCUDA(h, s, p)
	}
	wasQ := s.state == StateQuarantined
	if !wasQ {
		s.state = StateSanitizing
	}
	s.flags |= fBusy
	start := t.now()
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs,
		forensic.Field{Key: "device", Value: "cpu"},
		forensic.Field{Key: "stream_id", Value: optString(s.streamID())},
		forensic.Field{Key: "verify", Value: p.verify.value()},
		forensic.Field{Key: "double_pass", Value: p.doublePass},
	)
	lerr := t.append("sanitize_start", fs)
	n := s.nbytes
	var buf []byte
	if n > 0 {
		buf = unsafe.Slice((*byte)(cpuzero.Ptr(uintptr(s.ptr))), n)
	}
	s.mu.Unlock()

	// The work runs without the slot lock; fBusy keeps writers and free out.
	// Caller memory unmapped behind our back faults: Guard makes that an
	// error for this buffer instead of a crash (or a poisoned library).
	var res verifyResult
	ferr := cpuzero.Guard(func() {
		cpuzero.Zero(buf)
		if p.doublePass {
			cpuzero.Zero(buf)
		}
		if testHookAfterZero != nil {
			testHookAfterZero(buf)
		}
		res = t.verifyHost(buf, h, p)
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	end := t.now()
	s.flags &^= fBusy
	if ferr != nil {
		qerr := t.quarantineLocked(h, s, qVerify, "memory_fault")
		if lerr == nil {
			lerr = qerr
		}
		if lerr != nil {
			return 0, lerr
		}
		return 0, errorf(StatusInvalidArg, "sanitize: buffer %d: memory [0x%x, +%d) is not accessible (%v); nothing proven, quarantined", uint64(h), s.ptr, s.nbytes, ferr)
	}
	err = t.finishSanitize(h, s, res, p.verify, end-start, wasQ, "", DeviceCPU)
	if lerr != nil {
		return res.coverage, lerr
	}
	return res.coverage, err
}

type verifyResult struct {
	coverage float64
	nonzero  uint64
	failed   bool
	samples  []int64
	nonce    uint64
	hasNonce bool
}

// sampleHandle mixes the per-sanitize nonce into the handle for the PRF:
// handle XOR (nonce * 0x9E3779B97F4A7C15). An auditor given the tracer key
// reproduces the positions with cpuzero.SamplePositions.
func sampleHandle(h Handle, nonce uint64) uint64 {
	return uint64(h) ^ (nonce * 0x9E3779B97F4A7C15)
}

func (t *Tracer) verifyHost(buf []byte, h Handle, p sanPlan) verifyResult {
	n := uint64(len(buf))
	if n == 0 {
		return verifyResult{coverage: 100}
	}
	switch p.verify {
	case VerifyFull:
		nz := cpuzero.NonZeroBytes(buf)
		return verifyResult{coverage: pct(n, nz), nonzero: nz, failed: nz != 0}
	case VerifySampled:
		nonce := t.sanSeq.Add(1)
		sh := sampleHandle(h, nonce)
		_, bad := cpuzero.SampleVerify(buf, p.samples, t.key[:], sh)
		pos := cpuzero.SamplePositions(n, p.samples, t.key[:], sh)
		r := verifyResult{coverage: 100, nonce: nonce, hasNonce: true, samples: make([]int64, len(pos))}
		for i, x := range pos {
			r.samples[i] = int64(x)
		}
		if bad != 0 {
			nz := cpuzero.NonZeroBytes(buf)
			r.coverage, r.nonzero, r.failed = pct(n, nz), nz, true
			if nz == 0 { // cannot happen unless memory changed under us
				r.nonzero = uint64(bad)
			}
		}
		return r
	}
	return verifyResult{coverage: 0}
}

func pct(n, nonzero uint64) float64 {
	if n == 0 {
		return 100
	}
	if nonzero > n {
		nonzero = n
	}
	return float64(n-nonzero) / float64(n) * 100
}

// noSamples is the verify_samples value of a sanitize that sampled nothing
// (an empty list in the log), boxed once instead of per record. Never
// modified.
var noSamples any = []int64{}

// finishSanitize records the result of a sanitize (s locked).
func (t *Tracer) finishSanitize(h Handle, s *slot, r verifyResult, mode VerifyMode, dur int64, wasQ bool, uuid string, dev Device) error {
	s.coverage = r.coverage
	s.flags |= fSanitizedEver
	t.m.sanitized(dev, s.nbytes, dur)
	var samples any = r.samples
	if r.samples == nil {
		samples = noSamples
	}
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs,
		forensic.Field{Key: "coverage_pct", Value: boxPct(r.coverage)},
		forensic.Field{Key: "duration_ms", Value: float64(dur) / 1e6},
		forensic.Field{Key: "verify_samples", Value: samples},
		forensic.Field{Key: "verify", Value: mode.value()},
	)
	if r.hasNonce {
		fs = append(fs, forensic.Field{Key: "verify_nonce", Value: r.nonce})
	}
	if r.failed {
		fs = append(fs, forensic.Field{Key: "nonzero_bytes", Value: r.nonzero})
	}
	if uuid != "" {
		fs = append(fs, forensic.Field{Key: "device_uuid", Value: uuid})
	}
	if err := t.append("sanitize_end", fs); err != nil {
		return err
	}
	if r.failed {
		if err := t.quarantineLocked(h, s, qVerify, "verification_failed"); err != nil {
			return err
		}
		return errorf(StatusVerify, "sanitize: buffer %d: %d of %d bytes non-zero after zeroization (coverage %.4f%%); quarantined", uint64(h), r.nonzero, s.nbytes, r.coverage)
	}
	switch {
	case s.state == StateQuarantined:
		if wasQ && mode != VerifyNone {
			s.flags |= fVerifiedSinceQ
		}
	default:
		s.state = StateSanitized
	}
	return nil
}

// SanitizeMany sanitizes every handle (each attempted and logged) and
// returns the first failure. out, when not nil, must have len(hs) entries.
// Synchronous CUDA buffers are grouped per (device, stream) and zeroized
// with one launch per group; CPU buffers are zeroized in order.
func (t *Tracer) SanitizeMany(hs []Handle, o SanitizeOpts, out []float64) error {
	if out != nil && len(out) < len(hs) {
		return errorf(StatusInvalidArg, "sanitize_many: %d coverages for %d handles", len(out), len(hs))
	}
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	p, err := t.plan(o)
	if err != nil {
		return err
	}
	covs := out
	if covs == nil {
		covs = make([]float64, len(hs))
	}
	errs := make([]error, len(hs))
	type groupKey struct {
		ordinal int32
		stream  uint64
	}
	var groups map[groupKey][]cudaBatchItem
	var order []groupKey
	for i, h := range hs {
		if !p.async {
			if s, err := t.lookup(h); err == nil {
				if Device(s.device) == DeviceCUDA {
					k := groupKey{s.ordinal, s.stream}
					if o.UseStream {
						k.stream = o.Stream
					}
					s.mu.Unlock()
					if groups == nil {
						groups = map[groupKey][]cudaBatchItem{}
					}
					if _, ok := groups[k]; !ok {
						order = append(order, k)
					}
					groups[k] = append(groups[k], cudaBatchItem{i: i, h: h})
					continue
				}
				s.mu.Unlock()
			}
		}
		covs[i], errs[i] = t.sanitize(h, p, o)
	}
	for _, k := range order {
		t.sanitizeBatchCUDA(groups[k], p, int(k.ordinal), k.stream, covs, errs)
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("sanitize_many: handle %d (index %d): %w", uint64(hs[i]), i, err)
		}
	}
	return nil
}

// Wait completes an async sanitize; on a buffer without pending work it
// returns the attested coverage.
func (t *Tracer) Wait(h Handle) (float64, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	s, err := t.lookup(h)
	if err != nil {
		return 0, err
	}
	for s.ext != nil && s.ext.pending == nil && s.ext.done != nil {
		// another goroutine is completing it: wait for that one
		done := s.ext.done
		s.mu.Unlock()
		<-done
		if s, err = t.lookup(h); err != nil {
			return 0, err
		}
	}
	defer s.mu.Unlock()
	if s.ext != nil && s.ext.pending != nil {
		return t.finishCUDA(h, s)
	}
	if s.flags&fBusy != 0 {
		// a synchronous CPU sanitize is running in another goroutine
		return s.coverage, errorf(StatusPending, "wait: buffer %d is being sanitized by another call", uint64(h))
	}
	return s.coverage, nil
}

// AttestCoverage returns the last attested coverage (0 if never sanitized).
func (t *Tracer) AttestCoverage(h Handle) (float64, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	s, err := t.lookup(h)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.coverage, nil
}

// Quarantine quarantines the buffer (sticky) and logs the reason.
func (t *Tracer) Quarantine(h Handle, reason string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if err := ValidateID("reason", reason); err != nil {
		return err
	}
	s, err := t.lookup(h)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	return t.quarantineLocked(h, s, qManual, reason)
}

// ReleaseQuarantine lets a quarantined buffer out (to sanitized). It needs
// a sanitize with passing verification after the quarantine, else
// StatusState. Logs "release_quarantine" with the reason.
func (t *Tracer) ReleaseQuarantine(h Handle, reason string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if err := ValidateID("reason", reason); err != nil {
		return err
	}
	s, err := t.lookup(h)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.flags&fBusy != 0 {
		return errorf(StatusPending, "release_quarantine: buffer %d has a sanitize in progress", uint64(h))
	}
	if s.state != StateQuarantined {
		return errorf(StatusState, "release_quarantine: buffer %d is %s, not quarantined", uint64(h), s.state)
	}
	if s.flags&fVerifiedSinceQ == 0 || s.coverage < t.threshold {
		return errorf(StatusState, "release_quarantine: buffer %d needs a sanitize with passing verification after the quarantine", uint64(h))
	}
	s.state = StateSanitized
	s.qreason = qNone
	s.flags &^= fVerifiedSinceQ
	fs := make([]forensic.Field, 0, 24)
	fs = baseFields(fs, h, s)
	fs = append(fs,
		forensic.Field{Key: "reason", Value: reason},
		forensic.Field{Key: "coverage_pct", Value: s.coverage},
	)
	return t.append("release_quarantine", fs)
}

// Free releases the handle. Only a sanitized buffer with coverage >=
// threshold is freed; otherwise it is quarantined and StatusCoverage
// returned (StatusQuarantined if it already is, StatusPending while a
// sanitize is outstanding). Library-owned memory is zeroized, verified and
// unmapped. A freed handle is StatusFreed forever and logs nothing.
func (t *Tracer) Free(h Handle) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	s, err := t.lookup(h)
	if err != nil {
		return err
	}
	idx, gen := h.idx(), s.gen
	freed := false
	defer func() {
		s.mu.Unlock()
		if freed {
			t.reg.put(idx, gen)
		}
	}()
	if s.flags&fBusy != 0 {
		return errorf(StatusPending, "free: buffer %d has a sanitize in progress; wait for it first", uint64(h))
	}
	if s.state == StateQuarantined {
		return errorf(StatusQuarantined, "free: buffer %d is quarantined; sanitize it and release the quarantine first", uint64(h))
	}
	if s.state != StateSanitized || s.coverage < t.threshold {
		if err := t.quarantineLocked(h, s, qCoverage, fmt.Sprintf("coverage %.4f below threshold", s.coverage)); err != nil {
			return err
		}
		return errorf(StatusCoverage, "free: buffer %d attested coverage %.4f%% is below the threshold %.4f%% (state %s); quarantined", uint64(h), s.coverage, t.threshold, stateBefore(s))
	}
	if s.ext != nil && s.ext.mem != nil {
		m := s.ext.mem
		cpuzero.Zero(m.data)
		if nz := cpuzero.NonZeroBytes(m.data); nz != 0 {
			if err := t.quarantineLocked(h, s, qVerify, "verification_failed"); err != nil {
				return err
			}
			return errorf(StatusVerify, "free: library-owned buffer %d has %d non-zero bytes after zeroization; quarantined", uint64(h), nz)
		}
		if testHookBeforeUnmap != nil {
			testHookBeforeUnmap(m.data)
		}
		m.prevHandle, m.prevTenant = h, s.tenantV
		if !t.hostCache.put(m) {
			m.release()
		}
	}
	s.state = StateFreed
	s.ext = nil
	t.m.freed(s.coverage)
	fs := make([]forensic.Field, 0, 24)
	err = t.append("free", baseFields(fs, h, s))
	s.tenantV, s.requestV, s.modelV = nil, nil, nil
	freed = true
	return err
}

// stateBefore names the state for messages (quarantineLocked already ran).
func stateBefore(s *slot) string {
	if s.flags&fSanitizedEver != 0 {
		return "sanitized"
	}
	return "never sanitized"
}

// testHookAfterZero, when set by tests, runs between zeroization and
// verification (to simulate memory that was not cleared).
var testHookAfterZero func([]byte)

// testHookBeforeUnmap, when set by tests, sees library-owned memory after
// it was zeroized and verified, just before munmap.
var testHookBeforeUnmap func([]byte)

// Info describes the buffer.
func (t *Tracer) Info(h Handle) (BufferInfo, error) {
	if err := t.enter(); err != nil {
		return BufferInfo{}, err
	}
	defer t.leave()
	s, err := t.lookup(h)
	if err != nil {
		return BufferInfo{}, err
	}
	defer s.mu.Unlock()
	return BufferInfo{
		State: s.state, Ptr: s.ptr, NBytes: s.nbytes, Device: Device(s.device), Ordinal: int(s.ordinal),
		Stream: s.stream, CoveragePct: s.coverage, ReuseCount: s.reuse, MaxReuse: s.maxReuse,
		LibraryOwned: s.flags&fLibOwned != 0, Locked: s.flags&fLocked != 0,
		Tenant: s.tenant(), Request: s.request(), Model: s.model(),
	}, nil
}
