package core

import (
	"path/filepath"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("KV_COVERAGE_THRESHOLD", "95.5")
	t.Setenv("KV_DOUBLE_PASS_DEFAULT", "yes")
	t.Setenv("KV_VERIFY_SAMPLES_DEFAULT", "32")
	t.Setenv("KV_DEFAULT_MAX_REUSE", "-1")
	t.Setenv("KV_DEFAULT_TTL_SEC", "2.5")
	t.Setenv("FORENSIC_HMAC_SECRET", "secret")
	c, err := ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, 95.5, c.CoverageThreshold)
	require.True(t, c.DoublePassDefault)
	require.Equal(t, 32, c.VerifySamplesDefault)
	require.Equal(t, int64(-1), c.DefaultMaxReuse)
	require.True(t, c.HasDefaultTTL)
	require.Equal(t, 2.5, c.DefaultTTLSec)
	require.Equal(t, []byte("secret"), c.HMACKey)
	require.Equal(t, VerifyFull, c.VerifyDefault)

	// an HMAC-keyed tracer writes records its verifier accepts with the key
	c.LogPath = filepath.Join(t.TempDir(), "kv.log")
	c.SweepIntervalMS = 0
	tr, err := Open(c)
	require.NoError(t, err)
	defer tr.Close()
	_, err = tr.Allocate(AllocDesc{Ptr: 4096, Tenant: "t", Request: "r", Model: "m"})
	require.NoError(t, err)
	rs := readLog(t, tr, c.LogPath)
	require.Contains(t, rs[0], "hmac")
	require.Equal(t, 2.5, rs[0]["ttl_sec"])
	require.Equal(t, -1.0, rs[0]["max_reuse"])
}

func TestConfigFromEnvMalformed(t *testing.T) {
	for _, c := range []struct{ name, val string }{
		{"KV_COVERAGE_THRESHOLD", "abc"},
		{"KV_COVERAGE_THRESHOLD", "150"},
		{"KV_COVERAGE_THRESHOLD", "-1"},
		{"KV_COVERAGE_THRESHOLD", "NaN"},
		{"KV_DOUBLE_PASS_DEFAULT", "maybe"},
		{"KV_VERIFY_SAMPLES_DEFAULT", "0"},
		{"KV_VERIFY_SAMPLES_DEFAULT", "8.5"},
		{"KV_DEFAULT_MAX_REUSE", "lots"},
		{"KV_DEFAULT_TTL_SEC", "inf"},
		{"KV_DEFAULT_TTL_SEC", "1s"},
	} {
		t.Run(c.name+"="+c.val, func(t *testing.T) {
			t.Setenv(c.name, c.val)
			_, err := ConfigFromEnv()
			requireStatus(t, StatusConfig, err)
			require.Contains(t, err.Error(), c.name)
		})
	}
	t.Run("empty means unset", func(t *testing.T) {
		t.Setenv("KV_COVERAGE_THRESHOLD", "")
		t.Setenv("KV_DEFAULT_TTL_SEC", "")
		c, err := ConfigFromEnv()
		require.NoError(t, err)
		require.Equal(t, DefaultCoverageThreshold, c.CoverageThreshold)
		require.False(t, c.HasDefaultTTL)
	})
}

func TestOpenValidatesConfig(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"threshold > 100":    func(c *Config) { c.CoverageThreshold = 100.5 },
		"threshold < 0":      func(c *Config) { c.CoverageThreshold = -0.1 },
		"verify mode":        func(c *Config) { c.VerifyDefault = 7 },
		"ttl mode":           func(c *Config) { c.TTLMode = 3 },
		"fsync policy":       func(c *Config) { c.FsyncPolicy = 9 },
		"samples":            func(c *Config) { c.VerifySamplesDefault = -3 },
		"checkpoint key":     func(c *Config) { c.CheckpointDir = "/tmp/x" },
		"ttl not finite":     func(c *Config) { c.HasDefaultTTL, c.DefaultTTLSec = true, nan() },
		"key id with quote":  func(c *Config) { c.HMACKeyID = `a"` },
		"max log bytes huge": func(c *Config) { c.MaxLogBytes = 1 << 63 },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			c.LogPath = filepath.Join(t.TempDir(), "kv.log")
			mut(&c)
			_, err := Open(c)
			requireStatus(t, StatusConfig, err)
		})
	}
	// a zero Config gets defaults (except the threshold, which is 0 %)
	c := Config{LogPath: filepath.Join(t.TempDir(), "kv.log")}
	tr, err := Open(c)
	require.NoError(t, err)
	defer tr.Close()
	n := tr.Config()
	require.Equal(t, VerifyFull, n.VerifyDefault)
	require.Equal(t, DefaultVerifySamples, n.VerifySamplesDefault)
	require.Equal(t, uint64(DefaultMaxLogBytes), n.MaxLogBytes)
}

func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"tenant-0", "", `a"b`, "a\x00b", "\xff\xfe", "é", "\u2028", "\u0085", string(make([]byte, 300))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateID("x", s)
		ok := s != "" && len(s) <= MaxIDLen && validUTF8NoCtl(s)
		if ok != (err == nil) {
			t.Fatalf("ValidateID(%q) = %v, want ok=%v", s, err, ok)
		}
		if err != nil && StatusOf(err) != StatusInvalidID {
			t.Fatalf("status %v", StatusOf(err))
		}
	})
}

func validUTF8NoCtl(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '"' {
			return false
		}
	}
	return true
}

// Allocate never panics and accepts exactly the valid ids; accepted ids are
// recorded verbatim.
func FuzzAllocateIDs(f *testing.F) {
	f.Add("tenant", "req", "model")
	f.Add("t\"", "r\n", "")
	f.Add("ü", "\u2029", "\x7f")
	tr, path := newTracer(f, nil)
	f.Fuzz(func(t *testing.T, tenant, request, model string) {
		h, err := tr.Allocate(AllocDesc{Ptr: 4096, Tenant: tenant, Request: request, Model: model})
		valid := ValidateID("t", tenant) == nil && ValidateID("r", request) == nil && ValidateID("m", model) == nil
		if valid != (err == nil) {
			t.Fatalf("Allocate(%q,%q,%q) err=%v valid=%v", tenant, request, model, err, valid)
		}
		if err == nil {
			i, err := tr.Info(h)
			if err != nil || i.Tenant != tenant || i.Request != request || i.Model != model {
				t.Fatalf("info %+v %v", i, err)
			}
		} else if StatusOf(err) != StatusInvalidID {
			t.Fatalf("status %v", StatusOf(err))
		}
	})
	_ = path
}
