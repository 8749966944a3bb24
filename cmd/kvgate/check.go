package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// checkThresholds mirrors the seed's Thresholds dataclass; the JSON names
// are the seed's so verdicts stay comparable.
type checkThresholds struct {
	CoveragePctMin        float64  `json:"coverage_pct_min"`
	UnsanitizedRegionsMax int      `json:"unsanitized_regions_max"`
	QuarantineCountMax    int      `json:"quarantine_count_max"`
	ReuseRateMax          *float64 `json:"reuse_rate_max"`
	SanitizeP95MsMax      *float64 `json:"sanitize_p95_ms_max"`
}

// checkFailure is one violated threshold. Exactly one of ExpectedMin and
// ExpectedMax is set.
type checkFailure struct {
	Metric      string   `json:"metric"`
	Actual      float64  `json:"actual"`
	ExpectedMin *float64 `json:"expected_min,omitempty"`
	ExpectedMax *float64 `json:"expected_max,omitempty"`
}

// verdict is the seed's eviction_checker verdict (schema 1) plus "idle",
// which says the coverage threshold was not evaluated because no buffer
// was ever sanitized.
type verdict struct {
	Pass       bool                       `json:"pass"`
	Failures   []checkFailure             `json:"failures"`
	Metrics    map[string]json.RawMessage `json:"metrics"`
	Thresholds checkThresholds            `json:"thresholds"`
	TS         float64                    `json:"ts"`
	Schema     int                        `json:"schema"`
	Idle       bool                       `json:"idle"`
}

// gateMetrics are the values of a metrics file the gate looks at.
type gateMetrics struct {
	raw                map[string]json.RawMessage
	minCoverage        float64
	unsanitized        float64
	quarantine         float64
	reuseRate          float64
	hasReuseRate       bool
	p95                float64
	hasP95             bool
	idle               bool
	sanitizedTotalSeen bool
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "[flags] <metrics.json>")
	var th checkThresholds
	var reuseMax, p95Max optFloat
	fs.Float64Var(&th.CoveragePctMin, "coverage-min", 99.9, "minimum attested coverage percent (min_coverage_pct)")
	fs.IntVar(&th.UnsanitizedRegionsMax, "unsanitized-max", 0, "maximum unsanitized_regions_count")
	fs.IntVar(&th.QuarantineCountMax, "quarantine-max", 0, "maximum quarantine_count")
	fs.Var(&reuseMax, "reuse-rate-max", "maximum reuse_rate (unset = not checked)")
	fs.Var(&p95Max, "sanitize-p95-ms-max", "maximum sanitize_duration_p95_ms (unset = not checked)")
	out := fs.String("out", "forensics/verdict.json", "where the verdict JSON is written (atomically)")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return flagErrorCode(err, stderr)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "kvgate check: expected exactly one metrics file, got %d arguments (run 'kvgate check -h')\n", len(pos))
		return exitError
	}
	if math.IsNaN(th.CoveragePctMin) || th.CoveragePctMin < 0 || th.CoveragePctMin > 100 {
		fmt.Fprintf(stderr, "kvgate check: --coverage-min %v: must be between 0 and 100\n", th.CoveragePctMin)
		return exitError
	}
	if th.UnsanitizedRegionsMax < 0 || th.QuarantineCountMax < 0 {
		fmt.Fprintln(stderr, "kvgate check: --unsanitized-max and --quarantine-max must be >= 0")
		return exitError
	}
	if *out == "" {
		fmt.Fprintln(stderr, "kvgate check: --out must not be empty")
		return exitError
	}
	th.ReuseRateMax = reuseMax.ptr()
	th.SanitizeP95MsMax = p95Max.ptr()

	data, err := readInputFile(pos[0], "metrics file")
	if err != nil {
		fmt.Fprintln(stderr, "kvgate check: "+err.Error())
		return exitError
	}
	m, err := parseMetrics(data, pos[0])
	if err != nil {
		fmt.Fprintln(stderr, "kvgate check: "+err.Error())
		return exitError
	}
	if th.ReuseRateMax != nil && !m.hasReuseRate {
		fmt.Fprintf(stderr, "kvgate check: metrics file %s: --reuse-rate-max given but the file has no reuse_rate\n", pos[0])
		return exitError
	}
	if th.SanitizeP95MsMax != nil && !m.hasP95 {
		fmt.Fprintf(stderr, "kvgate check: metrics file %s: --sanitize-p95-ms-max given but the file has no sanitize_duration_p95_ms\n", pos[0])
		return exitError
	}
	v := evaluate(m, th, time.Now())
	pretty, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintln(stderr, "kvgate check: encode verdict: "+err.Error())
		return exitError
	}
	if err := writeFileAtomic(*out, append(pretty, '\n'), 0o644); err != nil {
		fmt.Fprintln(stderr, "kvgate check: verdict: "+err.Error())
		return exitError
	}
	compact, _ := json.Marshal(v)
	fmt.Fprintln(stdout, string(compact))
	if !v.Pass {
		return exitFail
	}
	return exitOK
}

// evaluate applies the thresholds. An idle tracer (nothing sanitized) is
// not a coverage failure; the seed reported min_coverage_pct 0 and failed.
func evaluate(m *gateMetrics, th checkThresholds, now time.Time) *verdict {
	v := &verdict{
		Failures:   []checkFailure{},
		Metrics:    m.raw,
		Thresholds: th,
		TS:         float64(now.UnixNano()) / 1e9,
		Schema:     1,
		Idle:       m.idle,
	}
	fmin := func(x float64) *float64 { return &x }
	if !m.idle && m.minCoverage < th.CoveragePctMin {
		v.Failures = append(v.Failures, checkFailure{Metric: "coverage_pct", Actual: m.minCoverage, ExpectedMin: fmin(th.CoveragePctMin)})
	}
	if m.unsanitized > float64(th.UnsanitizedRegionsMax) {
		v.Failures = append(v.Failures, checkFailure{Metric: "unsanitized_regions_count", Actual: m.unsanitized, ExpectedMax: fmin(float64(th.UnsanitizedRegionsMax))})
	}
	if m.quarantine > float64(th.QuarantineCountMax) {
		v.Failures = append(v.Failures, checkFailure{Metric: "quarantine_count", Actual: m.quarantine, ExpectedMax: fmin(float64(th.QuarantineCountMax))})
	}
	if th.ReuseRateMax != nil && m.reuseRate > *th.ReuseRateMax {
		v.Failures = append(v.Failures, checkFailure{Metric: "reuse_rate", Actual: m.reuseRate, ExpectedMax: fmin(*th.ReuseRateMax)})
	}
	if th.SanitizeP95MsMax != nil && m.p95 > *th.SanitizeP95MsMax {
		v.Failures = append(v.Failures, checkFailure{Metric: "sanitize_duration_p95_ms", Actual: m.p95, ExpectedMax: fmin(*th.SanitizeP95MsMax)})
	}
	v.Pass = len(v.Failures) == 0
	return v
}

// parseMetrics validates a metrics JSON document written by the seed's
// CacheTracer.export_metrics or by kvh_export_metrics.
func parseMetrics(data []byte, path string) (*gateMetrics, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if looksLikePromText(trimmed) {
			return nil, fmt.Errorf("metrics file %s: this is Prometheus text format; kvgate check needs the metrics JSON (kvh_export_metrics / export_metrics)", path)
		}
		return nil, fmt.Errorf("metrics file %s: not a JSON object", path)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("metrics file %s: malformed JSON: %s", path, oneLine(err.Error()))
	}
	if dec.More() {
		if _, isLog := raw["curr_hash"]; isLog {
			return nil, fmt.Errorf("metrics file %s: this is a forensic log (one record per line), not a metrics file; use 'kvgate verify'", path)
		}
		return nil, fmt.Errorf("metrics file %s: malformed JSON: data after the top-level object", path)
	}
	if _, isLog := raw["curr_hash"]; isLog {
		return nil, fmt.Errorf("metrics file %s: this is a forensic log record, not a metrics file; use 'kvgate verify'", path)
	}
	if _, isVerdict := raw["failures"]; isVerdict {
		return nil, fmt.Errorf("metrics file %s: this is a kvgate verdict, not a metrics file", path)
	}
	if s, ok := raw["schema"]; ok {
		if n, err := strconv.Atoi(string(s)); err != nil || n != 1 {
			return nil, fmt.Errorf("metrics file %s: unsupported schema %s (expected 1)", path, string(s))
		}
	}
	m := &gateMetrics{raw: raw}
	num := func(key string, required, count bool) (float64, bool, error) {
		r, ok := raw[key]
		if !ok {
			if required {
				return 0, false, fmt.Errorf("metrics file %s: missing %q (is this a kvhygiene metrics file?)", path, key)
			}
			return 0, false, nil
		}
		var f float64
		if err := json.Unmarshal(r, &f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false, fmt.Errorf("metrics file %s: %q is %s, expected a number", path, key, string(r))
		}
		if count && (f < 0 || f != math.Trunc(f)) {
			return 0, false, fmt.Errorf("metrics file %s: %q is %s, expected a non-negative integer", path, key, string(r))
		}
		return f, true, nil
	}
	var err error
	if m.minCoverage, _, err = num("min_coverage_pct", true, false); err != nil {
		return nil, err
	}
	if m.minCoverage < 0 || m.minCoverage > 100 {
		return nil, fmt.Errorf("metrics file %s: min_coverage_pct %v is outside 0..100", path, m.minCoverage)
	}
	if m.unsanitized, _, err = num("unsanitized_regions_count", true, true); err != nil {
		return nil, err
	}
	if m.quarantine, _, err = num("quarantine_count", true, true); err != nil {
		return nil, err
	}
	if m.reuseRate, m.hasReuseRate, err = num("reuse_rate", false, false); err != nil {
		return nil, err
	}
	if m.p95, m.hasP95, err = num("sanitize_duration_p95_ms", false, false); err != nil {
		return nil, err
	}
	sanitized, hasSanitized, err := num("sanitized_total", false, true)
	if err != nil {
		return nil, err
	}
	total, hasTotal, err := num("total_buffers", false, true)
	if err != nil {
		return nil, err
	}
	m.sanitizedTotalSeen = hasSanitized
	switch {
	case hasSanitized:
		// Our tracer reports how many buffers were sanitized: idle means none.
		m.idle = sanitized == 0
	default:
		// The seed's files: min over no buffers was reported as 0.
		m.idle = m.minCoverage == 0 && (!hasTotal || total == 0)
	}
	return m, nil
}

func looksLikePromText(b []byte) bool {
	return bytes.HasPrefix(b, []byte("# HELP")) || bytes.HasPrefix(b, []byte("# TYPE")) || bytes.HasPrefix(b, []byte("kv_hygiene_"))
}
