package core

import (
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvhygiene/kvhygiene/forensic"
	"github.com/prometheus/client_golang/prometheus"
)

// Tracer is one tracer: a buffer registry, pools, policies, a forensic
// writer and a metrics registry. All methods are safe for concurrent use.
type Tracer struct {
	cfg       Config
	threshold float64
	tag       uint16
	key       [32]byte // secret for sampled verification positions
	t0        time.Time

	w *forensic.Writer

	// opMu is read-locked by every operation; Close write-locks it so no
	// operation runs while memory is unmapped and the log is closed.
	opMu   sync.RWMutex
	closed atomic.Bool

	reg       registry
	hostCache hostCache // freed library-owned mappings, proven zero, for reuse

	poolMu    sync.RWMutex
	pools     map[uint32]*pool
	poolSeq   uint32
	internMu  sync.RWMutex
	interned  map[string]any
	sanSeq    atomic.Uint64
	m         *metrics
	srvMu     sync.Mutex
	srv       *http.Server
	srvDone   chan struct{}
	sweepStop chan struct{}
	sweepDone chan struct{}
	keepStop  chan struct{}
	keepDone  chan struct{}
	cuda      cudaState
}

var (
	tagsMu sync.Mutex
	tags   = map[uint16]bool{}
)

func newTag() uint16 {
	tagsMu.Lock()
	defer tagsMu.Unlock()
	for {
		var b [2]byte
		_, _ = rand.Read(b[:])
		tg := binary.LittleEndian.Uint16(b[:])
		if tg != 0 && !tags[tg] {
			tags[tg] = true
			return tg
		}
	}
}

func dropTag(tg uint16) {
	tagsMu.Lock()
	delete(tags, tg)
	tagsMu.Unlock()
}

// Open validates cfg, opens (and locks) the forensic log and starts the TTL
// sweeper. Errors: StatusConfig for a bad configuration, StatusLog when the
// log cannot be opened (e.g. locked by another writer), StatusIO when its
// directory cannot be created.
func Open(cfg Config) (*Tracer, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	t := &Tracer{cfg: cfg, threshold: cfg.CoverageThreshold, t0: time.Now(), pools: map[uint32]*pool{}, interned: map[string]any{}}
	if _, err := rand.Read(t.key[:]); err != nil {
		return nil, errorf(StatusInternal, "core: random key: %v", err)
	}
	if dir := filepath.Dir(cfg.LogPath); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, errorf(StatusIO, "core: create log directory %s: %v", dir, err)
		}
	}
	t.m = newMetrics(t)
	opts := forensic.Options{
		Path:               cfg.LogPath,
		HMACKey:            cfg.HMACKey,
		KeyID:              cfg.HMACKeyID,
		MaxBytes:           int64(cfg.MaxLogBytes),
		Fsync:              forensic.FsyncPolicy(cfg.FsyncPolicy),
		FsyncInterval:      time.Duration(cfg.FsyncIntervalMS) * time.Millisecond,
		CheckpointDir:      cfg.CheckpointDir,
		CheckpointKeyPath:  cfg.CheckpointKeyPath,
		CheckpointEvery:    int(cfg.CheckpointEveryRecords),
		CheckpointInterval: time.Duration(cfg.CheckpointEveryMS) * time.Millisecond,
		FSStatePath:        cfg.FSStatePath,
		OnFsync:            t.m.observeFsync,
	}
	w, err := forensic.Open(opts)
	if err != nil {
		return nil, errorf(StatusLog, "core: open forensic log %s: %v", cfg.LogPath, err)
	}
	t.w = w
	t.hostCache.onDirty = t.writeAfterFree
	if cfg.Registerer != nil {
		if err := t.m.registerTo(cfg.Registerer); err != nil {
			_ = w.Close()
			return nil, errorf(StatusConfig, "core: register metrics: %v", err)
		}
	}
	t.tag = newTag()
	if cfg.SweepIntervalMS > 0 {
		t.sweepStop = make(chan struct{})
		t.sweepDone = make(chan struct{})
		go t.sweeper(time.Duration(cfg.SweepIntervalMS) * time.Millisecond)
	}
	if cfg.Retention {
		t.keepStop = make(chan struct{})
		t.keepDone = make(chan struct{})
		go t.retainer(retentionEvery)
	}
	return t, nil
}

// Config returns the normalized configuration the tracer runs with.
func (t *Tracer) Config() Config { return t.cfg }

// enter starts an operation; the caller must call t.leave() after a nil
// error.
func (t *Tracer) enter() error {
	t.opMu.RLock()
	if t.closed.Load() {
		t.opMu.RUnlock()
		return errorf(StatusClosed, "tracer is closed")
	}
	return nil
}

func (t *Tracer) leave() { t.opMu.RUnlock() }

// now returns monotonic nanoseconds since the tracer opened.
func (t *Tracer) now() int64 { return int64(time.Since(t.t0)) }

// Close stops the sweeper and the metrics server, completes pending device
// work, zeroizes and unmaps library-owned memory, flushes the log (with a
// checkpoint when configured) and closes it. Live buffers are left as
// recorded. A second Close is StatusClosed.
func (t *Tracer) Close() error {
	if t.closed.Load() {
		return errorf(StatusClosed, "tracer is closed")
	}
	if t.sweepStop != nil {
		select {
		case <-t.sweepStop:
		default:
			close(t.sweepStop)
		}
		<-t.sweepDone
	}
	if t.keepStop != nil {
		select {
		case <-t.keepStop:
		default:
			close(t.keepStop)
		}
		<-t.keepDone
	}
	_ = t.StopMetrics()
	t.opMu.Lock()
	if t.closed.Swap(true) {
		t.opMu.Unlock()
		return errorf(StatusClosed, "tracer is closed")
	}
	defer t.opMu.Unlock()
	var errs []error
	// Complete outstanding device work so nothing is left enqueued on memory
	// the caller may reuse, then release library-owned memory.
	t.reg.each(func(idx uint32, s *slot) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ext == nil || s.state == StateFreed {
			return
		}
		if p := s.ext.pending; p != nil {
			if _, err := t.finishCUDA(makeHandle(t.tag, s.gen, idx), s); err != nil {
				errs = append(errs, err)
			}
		}
		if m := s.ext.mem; m != nil {
			m.zeroAndRelease()
			s.ext.mem = nil
		}
	})
	t.hostCache.drain()
	t.poolMu.Lock()
	for _, p := range t.pools {
		p.mu.Lock()
		if err := t.poolSyncLocked(p); err != nil {
			errs = append(errs, err)
		}
		p.mu.Unlock()
	}
	t.poolMu.Unlock()
	if t.cfg.Retention {
		// Records still queued may have rotated the log: apply retention once
		// more so a shutdown leaves the directory within its limits. The
		// prune record itself can rotate a nearly full file; then go again.
		for range 3 {
			rot := t.w.Stats().Rotations
			if err := t.pruneOnce(); err != nil {
				errs = append(errs, errorf(StatusLog, "core: retention on close: %v", err))
				break
			}
			if t.w.Stats().Rotations == rot {
				break
			}
		}
	}
	if t.cfg.CheckpointDir != "" {
		if err := t.w.Checkpoint(); err != nil {
			errs = append(errs, errorf(StatusLog, "core: checkpoint on close: %v", err))
		}
	}
	if err := t.w.Close(); err != nil {
		errs = append(errs, errorf(StatusLog, "core: close forensic log: %v", err))
	}
	if t.cfg.Registerer != nil {
		t.m.unregisterFrom(t.cfg.Registerer)
	}
	dropTag(t.tag)
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Flush writes and fsyncs every record appended so far.
func (t *Tracer) Flush() error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if err := t.w.Flush(); err != nil {
		return errorf(StatusLog, "core: flush forensic log: %v", err)
	}
	return nil
}

// Checkpoint writes a signed checkpoint now (requires Config.CheckpointDir).
func (t *Tracer) Checkpoint() error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if t.cfg.CheckpointDir == "" {
		return errorf(StatusConfig, "core: checkpoint: no checkpoint_dir configured")
	}
	if err := t.w.Checkpoint(); err != nil {
		return errorf(StatusLog, "core: checkpoint: %v", err)
	}
	return nil
}

// Writer exposes the forensic writer (stats, tests).
func (t *Tracer) Writer() *forensic.Writer { return t.w }

// Registry returns the tracer's own Prometheus registry.
func (t *Tracer) Registry() *prometheus.Registry { return t.m.reg }

// internStr is intern for callers that need the string.
func (t *Tracer) internStr(s string) string { v, _ := t.intern(s).(forensic.Text); return string(v) }

// intern returns a canonical boxed copy of s (a forensic.Text: s is a
// validated identifier) so that repeated tenant and model ids share storage
// and records need no allocation for them (bounded: after 4096 distinct
// values new ones are boxed afresh).
func (t *Tracer) intern(s string) any {
	t.internMu.RLock()
	v, ok := t.interned[s]
	t.internMu.RUnlock()
	if ok {
		return v
	}
	t.internMu.Lock()
	defer t.internMu.Unlock()
	if v, ok := t.interned[s]; ok {
		return v
	}
	var boxed any = forensic.Text(s)
	if len(t.interned) < 4096 {
		t.interned[s] = boxed
	}
	return boxed
}

// append writes one record; a failure is StatusLog.
func (t *Tracer) append(event string, fs []forensic.Field) error {
	if err := t.w.AppendConst(event, fs...); err != nil {
		return errorf(StatusLog, "core: forensic append %s: %v", event, err)
	}
	return nil
}

func deviceName(dev uint8, ordinal int32) any {
	if Device(dev) == DeviceCUDA {
		return "cuda:" + strconv.Itoa(int(ordinal))
	}
	return "cpu"
}

// baseFields appends the seed's common fields.
func baseFields(fs []forensic.Field, h Handle, s *slot) []forensic.Field {
	hv := s.handleV
	if v, ok := hv.(forensic.Decimal); !ok || Handle(v) != h {
		hv = forensic.Decimal(h)
	}
	return append(fs,
		forensic.Field{Key: "handle", Value: hv},
		forensic.Field{Key: "tenant_id", Value: s.tenantV},
		forensic.Field{Key: "request_id", Value: s.requestV},
		forensic.Field{Key: "model_id", Value: s.modelV},
	)
}

// box100 is the usual coverage, boxed once.
var box100 any = 100.0

// boxUint8 is the default dtype, boxed once.
var boxUint8 any = forensic.Text("uint8")

// boxPct boxes a coverage percentage, without an allocation for 100.
func boxPct(v float64) any {
	if v == 100 {
		return box100
	}
	return v
}

func optString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// sweeper quarantines buffers whose TTL expired, even untouched ones.
func (t *Tracer) sweeper(every time.Duration) {
	defer close(t.sweepDone)
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-t.sweepStop:
			return
		case <-tk.C:
			t.sweepOnce()
		}
	}
}

// sweepOnce quarantines every expired buffer that still holds data
// (allocated, bound, in_use) and whose TTL is positive; a TTL <= 0 is
// reported on first use instead.
func (t *Tracer) sweepOnce() int {
	if t.enter() != nil {
		return 0
	}
	defer t.leave()
	now := t.now()
	n := 0
	t.reg.each(func(idx uint32, s *slot) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.gen == 0 || s.flags&fHasTTL == 0 || s.ttl <= 0 || s.flags&fBusy != 0 {
			return
		}
		switch s.state {
		case StateAllocated, StateBound, StateInUse:
		default:
			return
		}
		if now-s.ttlBase >= s.ttl {
			_ = t.quarantineLocked(makeHandle(t.tag, s.gen, idx), s, qTTL, "ttl_expired")
			n++
		}
	})
	return n
}

func fieldKV(k string, v any) forensic.Field { return forensic.Field{Key: k, Value: v} }

func fieldDevice(s *slot) forensic.Field {
	return forensic.Field{Key: "device", Value: deviceName(s.device, s.ordinal)}
}

func fieldStreamID(s *slot) forensic.Field {
	return forensic.Field{Key: "stream_id", Value: optString(s.streamID())}
}
