package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/core"
)

var metricRe = regexp.MustCompile(`kv_hygiene_[a-z0-9_]+`)

// registeredNames opens a real tracer with its own registry, drives it
// through a lifecycle, a quarantine and an isolation violation (so labelled
// series exist) and returns every series name it exposes.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := core.DefaultConfig()
	cfg.LogPath = filepath.Join(t.TempDir(), "kv_cache.log")
	cfg.Registerer = reg
	cfg.SweepIntervalMS = 0
	tr, err := core.Open(cfg)
	require.NoError(t, err)
	defer tr.Close()
	alloc := func(req string) core.Handle {
		h, err := tr.Allocate(core.AllocDesc{NBytes: 4096, Device: core.DeviceCPU, Tenant: "a", Request: req, Model: "m"})
		require.NoError(t, err)
		return h
	}
	h := alloc("r1")
	require.NoError(t, tr.MarkInUse(h, "a"))
	_, err = tr.Sanitize(h, core.SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h))
	require.NoError(t, tr.Quarantine(alloc("r2"), "manual"))
	require.Error(t, tr.MarkInUse(alloc("r3"), "b"), "cross-tenant use is refused")
	require.NoError(t, tr.Flush())

	fams, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		names[n] = true
		if f.GetType().String() == "HISTOGRAM" {
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		}
		if f.GetType().String() == "SUMMARY" {
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	return names
}

// usedNames extracts kv_hygiene_* names from the dashboard's expressions and
// template queries and from the alert rules.
func usedNames(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	b, err := os.ReadFile("grafana/kvhygiene-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &dash), "dashboard is valid JSON")
	require.NotEmpty(t, dash.Panels)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q has queries", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, metricRe.FindAllString(tg.Expr, -1), "panel %q uses a kvhygiene metric", p.Title)
			for _, n := range metricRe.FindAllString(tg.Expr, -1) {
				used[n] = append(used[n], "dashboard panel "+p.Title)
			}
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			for _, n := range metricRe.FindAllString(s, -1) {
				used[n] = append(used[n], "dashboard variable")
			}
		}
	}
	rules, err := os.ReadFile("prometheus/kvhygiene-alerts.yml")
	require.NoError(t, err)
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "expr:") {
			for _, n := range metricRe.FindAllString(line, -1) {
				used[n] = append(used[n], "alert rule")
			}
		}
	}
	return used
}

func TestDashboardAndAlertsUseRegisteredMetrics(t *testing.T) {
	registered := registeredNames(t)
	used := usedNames(t)
	require.NotEmpty(t, used)
	var missing []string
	for n, where := range used {
		if !registered[n] {
			missing = append(missing, n+" (used in "+where[0]+")")
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "metric names the library does not register")
	// The headline series of the brief are on the dashboard.
	for _, n := range []string{"kv_hygiene_sanitized_bytes_total", "kv_hygiene_sanitize_duration_seconds_bucket",
		"kv_hygiene_quarantines_total", "kv_hygiene_isolation_violations_total", "kv_hygiene_log_records_total",
		"kv_hygiene_log_fsync_duration_seconds_bucket", "kv_hygiene_min_coverage_pct"} {
		assert.Contains(t, used, n)
	}
}

// k8sDocs returns every YAML document of deploy/k8s with its file name.
func k8sDocs(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	docs := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, d := range strings.Split(string(b), "\n---") {
			if strings.TrimSpace(d) != "" {
				docs[f] = append(docs[f], d)
			}
		}
	}
	return docs
}

var (
	kindRe      = regexp.MustCompile(`(?m)^kind:\s*(\S+)`)
	metaNameRe  = regexp.MustCompile(`(?m)^metadata:\n(?:\s+.*\n)*?\s+name:\s*(\S+)`)
	secretRefRe = regexp.MustCompile(`secretKeyRef:\s*\n\s*name:\s*(\S+)\s*\n\s*key:\s*(\S+)`)
	secretVolRe = regexp.MustCompile(`secretName:\s*(\S+)`)
)

func TestK8sUsesOneSecretName(t *testing.T) {
	var secrets []string
	refs := map[string]bool{}
	keys := map[string]bool{}
	for f, ds := range k8sDocs(t) {
		for _, d := range ds {
			k := kindRe.FindStringSubmatch(d)
			require.NotNil(t, k, "%s: document without kind", f)
			if k[1] == "Secret" {
				m := metaNameRe.FindStringSubmatch(d)
				require.NotNil(t, m, "%s: secret without name", f)
				secrets = append(secrets, m[1])
				assert.Contains(t, d, "FORENSIC_HMAC_SECRET:", "%s: the secret holds FORENSIC_HMAC_SECRET", f)
			}
			for _, m := range secretRefRe.FindAllStringSubmatch(d, -1) {
				refs[m[1]], keys[m[2]] = true, true
			}
			for _, m := range secretVolRe.FindAllStringSubmatch(d, -1) {
				refs[m[1]] = true
			}
		}
	}
	require.Len(t, secrets, 1, "exactly one Secret manifest")
	require.NotEmpty(t, refs, "the workloads reference the HMAC secret")
	assert.Equal(t, map[string]bool{secrets[0]: true}, refs, "every reference names the one secret")
	assert.Equal(t, map[string]bool{"FORENSIC_HMAC_SECRET": true}, keys)
}

func TestK8sWorkloadsAreHardened(t *testing.T) {
	sawCronJob, sawPVC := false, false
	for f, ds := range k8sDocs(t) {
		for _, d := range ds {
			kind := kindRe.FindStringSubmatch(d)[1]
			switch kind {
			case "CronJob", "Deployment", "Job", "DaemonSet", "StatefulSet":
			default:
				continue
			}
			containers := strings.Count(d, "image:")
			require.Positive(t, containers, "%s: %s without containers", f, kind)
			assert.Equal(t, containers, strings.Count(d, "readOnlyRootFilesystem: true"), "%s: every container has a read-only root fs", f)
			assert.Equal(t, containers, strings.Count(d, "allowPrivilegeEscalation: false"), "%s", f)
			assert.GreaterOrEqual(t, strings.Count(d, "runAsNonRoot: true"), containers, "%s: runAsNonRoot", f)
			assert.Contains(t, d, "persistentVolumeClaim:", "%s: logs live on a PVC", f)
			sawPVC = true
			if kind == "CronJob" {
				sawCronJob = true
				assert.Contains(t, d, "- verify")
				assert.Contains(t, d, "--retention-days=")
				assert.Contains(t, d, "concurrencyPolicy: Forbid")
			}
		}
	}
	assert.True(t, sawCronJob, "a CronJob runs kvgate verify")
	assert.True(t, sawPVC)
}

// TestPromtool validates the scrape config and alert rules with the real
// promtool (Debian's prometheus package) when it is installed.
func TestPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (Debian package prometheus); required when CI=true")
		}
		t.Skip("promtool not installed")
	}
	for _, args := range [][]string{
		{"check", "rules", "prometheus/kvhygiene-alerts.yml"},
		{"check", "config", "prometheus/scrape-config.yml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		assert.NoError(t, err, "promtool %v: %s", args, out)
	}
}
