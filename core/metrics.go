package core

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

const durRingSize = 2048

// metrics holds the tracer's counters and its Prometheus registry.
type metrics struct {
	t   *Tracer
	reg *prometheus.Registry

	allocations atomic.Uint64
	reuse       atomic.Uint64
	freedN      atomic.Uint64

	isolation   prometheus.Counter
	quarantines [len(qReasonLabels)]prometheus.Counter
	sanDur      [2]prometheus.Observer
	sanBytes    [2]prometheus.Counter
	fsyncDur    prometheus.Histogram
	prunedFiles prometheus.Counter
	pruneErrors prometheus.Counter
	tenantAlloc *prometheus.CounterVec // nil unless MetricsTenantLabels

	aggMu      sync.Mutex
	freedMin   float64
	freedSum   float64
	freedCount uint64
	poolMin    float64
	poolSum    float64
	poolCount  uint64

	durRing [durRingSize]atomic.Uint64 // float64 bits, milliseconds
	durIdx  atomic.Uint64

	collectors []prometheus.Collector
}

func newMetrics(t *Tracer) *metrics {
	m := &metrics{t: t, reg: prometheus.NewRegistry(), freedMin: 100, poolMin: 100}
	m.isolation = prometheus.NewCounter(prometheus.CounterOpts{Name: "kv_hygiene_isolation_violations_total",
		Help: "Operations that named a tenant other than the owner of a buffer or pool block"})
	qv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kv_hygiene_quarantines_total",
		Help: "Quarantine events by reason"}, []string{"reason"})
	for i, l := range qReasonLabels {
		if i > 0 {
			m.quarantines[i] = qv.WithLabelValues(l)
		}
	}
	dv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kv_hygiene_sanitize_duration_seconds",
		Help:    "Duration of sanitize operations (zeroize + verify), buffers and pool releases",
		Buckets: prometheus.ExponentialBucketsRange(1e-6, 10, 22)}, []string{"device"})
	bv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kv_hygiene_sanitized_bytes_total",
		Help: "Bytes zeroized and verified"}, []string{"device"})
	for i, d := range []string{"cpu", "cuda"} {
		m.sanDur[i] = dv.WithLabelValues(d)
		m.sanBytes[i] = bv.WithLabelValues(d)
	}
	m.fsyncDur = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kv_hygiene_log_fsync_duration_seconds",
		Help: "Forensic log fsync latency", Buckets: prometheus.ExponentialBucketsRange(1e-5, 10, 18)})
	stat := func(f func() float64) func() float64 {
		return func() float64 {
			if t.w == nil {
				return 0
			}
			return f()
		}
	}
	logRecords := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kv_hygiene_log_records_total",
		Help: "Forensic records written"}, stat(func() float64 { return float64(t.w.Stats().Records) }))
	logBytes := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kv_hygiene_log_bytes_total",
		Help: "Forensic log bytes written"}, stat(func() float64 { return float64(t.w.Stats().Bytes) }))
	fsyncErrs := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kv_hygiene_log_fsync_errors_total",
		Help: "Failed forensic log fsyncs"}, stat(func() float64 { return float64(t.w.Stats().FsyncErrors) }))
	m.prunedFiles = prometheus.NewCounter(prometheus.CounterOpts{Name: "kv_hygiene_log_pruned_files_total",
		Help: "Rotated forensic log files removed or archived by retention (each declared by a prune record)"})
	m.pruneErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "kv_hygiene_log_prune_errors_total",
		Help: "Failed retention passes over the forensic log (retried on the next tick)"})
	m.collectors = []prometheus.Collector{seedCollector{m}, m.isolation, qv, dv, bv, m.fsyncDur, logRecords, logBytes, fsyncErrs,
		m.prunedFiles, m.pruneErrors}
	if t.cfg.MetricsTenantLabels {
		m.tenantAlloc = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kv_hygiene_tenant_allocations_total",
			Help: "Allocations by tenant (Config.MetricsTenantLabels)"}, []string{"tenant"})
		m.collectors = append(m.collectors, m.tenantAlloc)
	}
	for _, c := range m.collectors {
		m.reg.MustRegister(c)
	}
	return m
}

func (m *metrics) registerTo(r prometheus.Registerer) error {
	for i, c := range m.collectors {
		if err := r.Register(c); err != nil {
			for _, d := range m.collectors[:i] {
				r.Unregister(d)
			}
			return err
		}
	}
	return nil
}

func (m *metrics) unregisterFrom(r prometheus.Registerer) {
	for _, c := range m.collectors {
		r.Unregister(c)
	}
}

func (m *metrics) observeFsync(d time.Duration) { m.fsyncDur.Observe(d.Seconds()) }

func (m *metrics) quarantine(cat uint8) { m.quarantines[cat].Inc() }

func (m *metrics) tenantAllocInc(tenant string) {
	if m.tenantAlloc != nil {
		m.tenantAlloc.WithLabelValues(tenant).Inc()
	}
}

func (m *metrics) sanitized(dev Device, n uint64, durNS int64) {
	i := 0
	if dev == DeviceCUDA {
		i = 1
	}
	m.sanDur[i].Observe(float64(durNS) / 1e9)
	m.sanBytes[i].Add(float64(n))
	k := m.durIdx.Add(1) - 1
	m.durRing[k%durRingSize].Store(math.Float64bits(float64(durNS) / 1e6))
}

func (m *metrics) freed(cov float64) {
	m.freedN.Add(1)
	m.aggMu.Lock()
	m.freedMin = min(m.freedMin, cov)
	m.freedSum += cov
	m.freedCount++
	m.aggMu.Unlock()
}

func (m *metrics) poolReleased(cov float64) {
	m.aggMu.Lock()
	m.poolMin = min(m.poolMin, cov)
	m.poolSum += cov
	m.poolCount++
	m.aggMu.Unlock()
}

// Snapshot is the seed's metrics set (plus SanitizedTotal), computed
// consistently at one moment.
type Snapshot struct {
	TotalBuffers      uint64  // buffers ever allocated (the seed never forgets a buffer)
	ActiveBuffers     uint64  // live, not quarantined
	Unsanitized       uint64  // live in allocated / bound / in_use / sanitizing
	QuarantineCount   uint64  // buffers and pool blocks currently quarantined
	MinCoveragePct    float64 // over every sanitized buffer (latest coverage; freed ones too) and pool release; 100 when none
	AvgCoveragePct    float64 // same population; 100 when none
	ThresholdPct      float64
	SanitizeP50MS     float64 // over the last 2048 sanitizes / pool releases
	SanitizeP95MS     float64
	Allocations       uint64
	FreedTotal        uint64
	ReuseTotal        uint64
	ReuseRate         float64 // reuse_total / allocations
	SanitizedTotal    uint64  // size of the coverage population; 0 = idle tracer
	IsolationViolated uint64
}

// Snapshot computes the metrics.
func (t *Tracer) Snapshot() Snapshot {
	m := t.m
	var s Snapshot
	minCov, sum := math.Inf(1), 0.0
	var n uint64
	t.reg.each(func(_ uint32, sl *slot) {
		sl.mu.Lock()
		if sl.gen != 0 && sl.state != StateFreed {
			switch sl.state {
			case StateQuarantined:
				s.QuarantineCount++
			case StateAllocated, StateBound, StateInUse, StateSanitizing:
				s.Unsanitized++
				s.ActiveBuffers++
			default:
				s.ActiveBuffers++
			}
			if sl.flags&fSanitizedEver != 0 {
				minCov = min(minCov, sl.coverage)
				sum += sl.coverage
				n++
			}
		}
		sl.mu.Unlock()
	})
	t.poolMu.RLock()
	pools := make([]*pool, 0, len(t.pools))
	for _, p := range t.pools {
		pools = append(pools, p)
	}
	t.poolMu.RUnlock()
	for _, p := range pools {
		p.mu.Lock()
		s.QuarantineCount += uint64(p.quarantined)
		p.mu.Unlock()
	}
	m.aggMu.Lock()
	if m.freedCount > 0 {
		minCov = min(minCov, m.freedMin)
		sum += m.freedSum
		n += m.freedCount
	}
	if m.poolCount > 0 {
		minCov = min(minCov, m.poolMin)
		sum += m.poolSum
		n += m.poolCount
	}
	m.aggMu.Unlock()
	s.SanitizedTotal = n
	if n == 0 {
		s.MinCoveragePct, s.AvgCoveragePct = 100, 100
	} else {
		s.MinCoveragePct, s.AvgCoveragePct = minCov, sum/float64(n)
	}
	s.ThresholdPct = t.threshold
	cnt := min(m.durIdx.Load(), durRingSize)
	durs := make([]float64, cnt)
	for i := range durs {
		durs[i] = math.Float64frombits(m.durRing[i].Load())
	}
	slices.Sort(durs)
	s.SanitizeP50MS, s.SanitizeP95MS = percentile(durs, 50), percentile(durs, 95)
	s.Allocations = m.allocations.Load()
	s.TotalBuffers = s.Allocations
	s.FreedTotal = m.freedN.Load()
	s.ReuseTotal = m.reuse.Load()
	if s.Allocations > 0 {
		s.ReuseRate = float64(s.ReuseTotal) / float64(s.Allocations)
	}
	return s
}

// percentile interpolates linearly between closest ranks (as the seed).
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	if lo == hi {
		return sorted[lo]
	}
	f := pos - float64(lo)
	return sorted[lo]*(1-f) + sorted[hi]*f
}

// pyFloat formats like Python's repr(float): "100.0", "0.5", "1e-05".
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	a := math.Abs(f)
	if f == 0 || (a >= 1e-4 && a < 1e16) {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.ContainsAny(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	// Go: 1e-05 -> "1e-05"; Python: "1e-05". Go: 1e+16 -> "1e+16"; same.
	return s
}

// MetricsJSON returns the seed-compatible metrics document: the seed's keys
// in its order, indent 2, floats written as Python does, plus
// "sanitized_total" (0 means an idle tracer: min/avg coverage then read 100
// so that an idle tracer does not fail a gate).
func (t *Tracer) MetricsJSON() ([]byte, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	defer t.leave()
	return t.Snapshot().JSON(), nil
}

// JSON renders the seed document.
func (s Snapshot) JSON() []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	kv := func(k, v string, last bool) {
		b.WriteString(`  "`)
		b.WriteString(k)
		b.WriteString(`": `)
		b.WriteString(v)
		if !last {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	u := func(x uint64) string { return strconv.FormatUint(x, 10) }
	kv("total_buffers", u(s.TotalBuffers), false)
	kv("active_buffers", u(s.ActiveBuffers), false)
	kv("unsanitized_regions_count", u(s.Unsanitized), false)
	kv("quarantine_count", u(s.QuarantineCount), false)
	kv("min_coverage_pct", pyFloat(s.MinCoveragePct), false)
	kv("avg_coverage_pct", pyFloat(s.AvgCoveragePct), false)
	kv("threshold_pct", pyFloat(s.ThresholdPct), false)
	kv("sanitize_duration_p50_ms", pyFloat(s.SanitizeP50MS), false)
	kv("sanitize_duration_p95_ms", pyFloat(s.SanitizeP95MS), false)
	kv("allocations", u(s.Allocations), false)
	kv("freed_total", u(s.FreedTotal), false)
	kv("reuse_total", u(s.ReuseTotal), false)
	kv("reuse_rate", pyFloat(s.ReuseRate), false)
	kv("sanitized_total", u(s.SanitizedTotal), true)
	b.WriteString("}")
	return b.Bytes()
}

// seedCollector exposes the seed's metric names (HELP/TYPE as the seed
// writes them) from one Snapshot per scrape.
type seedCollector struct{ m *metrics }

type seedMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(Snapshot) float64
}

var seedMetrics = []seedMetric{
	{prometheus.NewDesc("kv_hygiene_unsanitized_regions", "Count of buffers not yet sanitized", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return float64(s.Unsanitized) }},
	{prometheus.NewDesc("kv_hygiene_quarantine_count", "Count of buffers quarantined due to policy violations", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return float64(s.QuarantineCount) }},
	{prometheus.NewDesc("kv_hygiene_min_coverage_pct", "Minimum observed sanitization coverage percent across buffers", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return s.MinCoveragePct }},
	{prometheus.NewDesc("kv_hygiene_avg_coverage_pct", "Average sanitization coverage percent across buffers", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return s.AvgCoveragePct }},
	{prometheus.NewDesc("kv_hygiene_threshold_pct", "Required minimum sanitization coverage percent", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return s.ThresholdPct }},
	{prometheus.NewDesc("kv_hygiene_sanitize_duration_p50_ms", "P50 sanitize duration in milliseconds", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return s.SanitizeP50MS }},
	{prometheus.NewDesc("kv_hygiene_sanitize_duration_p95_ms", "P95 sanitize duration in milliseconds", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return s.SanitizeP95MS }},
	{prometheus.NewDesc("kv_hygiene_active_buffers", "Number of active (not freed/quarantined) buffers", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return float64(s.ActiveBuffers) }},
	{prometheus.NewDesc("kv_hygiene_total_buffers", "Total buffers observed", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return float64(s.TotalBuffers) }},
	{prometheus.NewDesc("kv_hygiene_allocations_total", "Total number of allocations", nil, nil), prometheus.CounterValue, func(s Snapshot) float64 { return float64(s.Allocations) }},
	{prometheus.NewDesc("kv_hygiene_freed_total", "Total number of frees", nil, nil), prometheus.CounterValue, func(s Snapshot) float64 { return float64(s.FreedTotal) }},
	{prometheus.NewDesc("kv_hygiene_reuse_total", "Total number of reuse events", nil, nil), prometheus.CounterValue, func(s Snapshot) float64 { return float64(s.ReuseTotal) }},
	{prometheus.NewDesc("kv_hygiene_reuse_rate", "Reuse events per allocation", nil, nil), prometheus.GaugeValue, func(s Snapshot) float64 { return s.ReuseRate }},
	{prometheus.NewDesc("kv_hygiene_sanitized_total", "Coverage attestations counted in min/avg coverage (0 = idle tracer)", nil, nil), prometheus.CounterValue, func(s Snapshot) float64 { return float64(s.SanitizedTotal) }},
}

func (c seedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, sm := range seedMetrics {
		ch <- sm.desc
	}
}

func (c seedCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.t.Snapshot()
	for _, sm := range seedMetrics {
		ch <- prometheus.MustNewConstMetric(sm.desc, sm.typ, sm.value(s))
	}
}

// PrometheusText renders the registry in the Prometheus text format.
func (t *Tracer) PrometheusText() ([]byte, error) {
	mfs, err := t.m.reg.Gather()
	if err != nil {
		return nil, errorf(StatusInternal, "core: gather metrics: %v", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, errorf(StatusInternal, "core: encode metrics: %v", err)
		}
	}
	return b.Bytes(), nil
}

// ExportMetrics writes MetricsJSON to path atomically (temp file in the
// same directory, fsync, rename, directory fsync).
func (t *Tracer) ExportMetrics(path string) error {
	data, err := t.MetricsJSON()
	if err != nil {
		return err
	}
	return atomicWrite(path, append(data, '\n'))
}

// ExportPrometheus writes the Prometheus text format to path atomically.
func (t *Tracer) ExportPrometheus(path string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	data, err := t.PrometheusText()
	if err != nil {
		return err
	}
	return atomicWrite(path, data)
}

func atomicWrite(path string, data []byte) error {
	if path == "" {
		return errorf(StatusInvalidArg, "export: empty path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return errorf(StatusIO, "export: create directory %s: %v", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return errorf(StatusIO, "export: create temp file in %s: %v", dir, err)
	}
	tmp := f.Name()
	fail := func(what string, err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return errorf(StatusIO, "export %s: %s: %v", path, what, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("write", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail("chmod", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return errorf(StatusIO, "export %s: close: %v", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return errorf(StatusIO, "export %s: rename: %v", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// ServeMetrics serves /metrics over HTTP from the tracer's registry. addr
// "host:port"; "" or ":port" binds 127.0.0.1 ("" picks a free port).
// Returns the bound address. A second server is StatusBusy.
func (t *Tracer) ServeMetrics(addr string) (string, error) {
	if err := t.enter(); err != nil {
		return "", err
	}
	defer t.leave()
	switch {
	case addr == "":
		addr = "127.0.0.1:0"
	case strings.HasPrefix(addr, ":"):
		addr = "127.0.0.1" + addr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", errorf(StatusInvalidArg, "metrics_serve: address %q: %v", addr, err)
	}
	t.srvMu.Lock()
	defer t.srvMu.Unlock()
	if t.srv != nil {
		return "", errorf(StatusBusy, "metrics_serve: a metrics server is already running")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", errorf(StatusIO, "metrics_serve: listen %s: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(t.m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.srv, t.srvDone = srv, done
	return ln.Addr().String(), nil
}

// StopMetrics stops the metrics server (no-op when none runs).
func (t *Tracer) StopMetrics() error {
	t.srvMu.Lock()
	srv, done := t.srv, t.srvDone
	t.srv, t.srvDone = nil, nil
	t.srvMu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-done
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return errorf(StatusIO, "metrics_stop: %v", err)
	}
	return nil
}
