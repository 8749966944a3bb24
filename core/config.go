package core

import (
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Device is kvh_device.
type Device int32

// Devices.
const (
	DeviceCPU  Device = 0
	DeviceCUDA Device = 1
)

// VerifyMode is kvh_verify_mode.
type VerifyMode int32

// Verification modes.
const (
	VerifyDefault VerifyMode = 0 // the tracer's Config.VerifyDefault
	VerifyNone    VerifyMode = 1 // no read-back: coverage attested as 0
	VerifySampled VerifyMode = 2 // unpredictable sampled positions
	VerifyFull    VerifyMode = 3 // every byte read back
)

func (v VerifyMode) String() string {
	switch v {
	case VerifyNone:
		return "none"
	case VerifySampled:
		return "sampled"
	case VerifyFull:
		return "full"
	}
	return "default"
}

// verifyModeValues holds the mode names boxed once: a record's "verify"
// field then costs no allocation.
var verifyModeValues = [...]any{"default", "none", "sampled", "full"}

// value returns the mode's name as a record field value.
func (v VerifyMode) value() any {
	if v >= 0 && int(v) < len(verifyModeValues) {
		return verifyModeValues[v]
	}
	return v.String()
}

// TTLMode is kvh_ttl_mode.
type TTLMode int32

// TTL modes.
const (
	TTLFromAlloc   TTLMode = 0 // TTL counts from allocation (the seed's behaviour)
	TTLFromLastUse TTLMode = 1 // TTL counts from the last MarkInUse / MarkReuse
)

// FsyncPolicy values, identical to kvh_fsync_policy and forensic.FsyncPolicy.
const (
	FsyncInterval int32 = 0
	FsyncNone     int32 = 1
	FsyncAlways   int32 = 2
)

// Defaults (kvh_config_init).
const (
	DefaultLogPath           = "forensics/kv_cache.log"
	DefaultCoverageThreshold = 99.9
	DefaultMaxLogBytes       = 5_000_000
	DefaultVerifySamples     = 8
	DefaultSweepIntervalMS   = 1000
	DefaultFsyncIntervalMS   = 10
	DefaultCheckpointRecords = 10000
	DefaultCheckpointMS      = 60000
	maxVerifySamples         = 1 << 20
)

// Config mirrors kvh_config with Go types. Obtain one from ConfigFromEnv (or
// DefaultConfig) and override fields; Open validates it.
//
// Zero values that mean "default" (as in the header): LogPath "",
// MaxLogBytes 0, VerifySamplesDefault 0, VerifyDefault VerifyDefault (=
// full), FsyncIntervalMS 0, CheckpointEveryRecords 0, CheckpointEveryMS 0.
// SweepIntervalMS 0 disables the sweeper; CoverageThreshold 0 is a real
// threshold of 0 %.
type Config struct {
	LogPath                string
	HMACKey                []byte
	HMACKeyID              string
	CoverageThreshold      float64 // percent, 0..100
	MaxLogBytes            uint64
	DoublePassDefault      bool
	VerifySamplesDefault   int
	VerifyDefault          VerifyMode
	DefaultMaxReuse        int64 // <0 unlimited, 0 first reuse violates
	DefaultTTLSec          float64
	HasDefaultTTL          bool
	TTLMode                TTLMode
	SweepIntervalMS        uint32
	FsyncPolicy            int32 // FsyncInterval / FsyncNone / FsyncAlways
	FsyncIntervalMS        uint32
	CheckpointDir          string
	CheckpointKeyPath      string
	CheckpointEveryRecords uint32
	CheckpointEveryMS      uint32
	MetricsTenantLabels    bool

	// Retention makes the tracer prune rotated log files itself (it holds
	// the log's lock): older than RetentionDays (0 = no age limit), beyond
	// MaxRotated files (-1 = no limit, 0 = keep none), archived to ArchiveDir
	// when set. A prune record declares every removal first.
	Retention     bool
	RetentionDays float64
	MaxRotated    int
	ArchiveDir    string

	// FSStatePath turns on the forward-secure MAC: the sealing-key state
	// file written by `kvgate fs-keygen`. Exclusive with HMACKey.
	FSStatePath string

	// Registerer, when set, additionally receives every collector of the
	// tracer (the tracer always has its own Registry). nil = own only.
	Registerer prometheus.Registerer
}

// DefaultConfig returns the built-in defaults, ignoring the environment.
func DefaultConfig() Config {
	return Config{
		LogPath:                DefaultLogPath,
		CoverageThreshold:      DefaultCoverageThreshold,
		MaxLogBytes:            DefaultMaxLogBytes,
		VerifySamplesDefault:   DefaultVerifySamples,
		VerifyDefault:          VerifyFull,
		DefaultMaxReuse:        0,
		TTLMode:                TTLFromAlloc,
		SweepIntervalMS:        DefaultSweepIntervalMS,
		FsyncPolicy:            FsyncInterval,
		FsyncIntervalMS:        DefaultFsyncIntervalMS,
		CheckpointEveryRecords: DefaultCheckpointRecords,
		CheckpointEveryMS:      DefaultCheckpointMS,
		MaxRotated:             -1,
	}
}

// ConfigFromEnv returns DefaultConfig with the seed's environment variables
// applied as defaults: KV_COVERAGE_THRESHOLD, KV_DOUBLE_PASS_DEFAULT,
// KV_VERIFY_SAMPLES_DEFAULT, KV_DEFAULT_MAX_REUSE, KV_DEFAULT_TTL_SEC and
// FORENSIC_HMAC_SECRET. An unset or empty variable keeps the default. A
// malformed value is an error with StatusConfig naming the variable; unlike
// the seed, a threshold outside 0..100 is refused (the seed accepts 150 and
// then fails every free).
func ConfigFromEnv() (Config, error) {
	c := DefaultConfig()
	if v, ok := env("KV_COVERAGE_THRESHOLD"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) {
			return c, errorf(StatusConfig, "KV_COVERAGE_THRESHOLD=%q is not a number", v)
		}
		if f < 0 || f > 100 {
			return c, errorf(StatusConfig, "KV_COVERAGE_THRESHOLD=%q is outside 0..100 (percent)", v)
		}
		c.CoverageThreshold = f
	}
	if v, ok := env("KV_DOUBLE_PASS_DEFAULT"); ok {
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			c.DoublePassDefault = true
		case "0", "false", "no", "off":
			c.DoublePassDefault = false
		default:
			return c, errorf(StatusConfig, "KV_DOUBLE_PASS_DEFAULT=%q is not a boolean (1/0, true/false, yes/no, on/off)", v)
		}
	}
	if v, ok := env("KV_VERIFY_SAMPLES_DEFAULT"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxVerifySamples {
			return c, errorf(StatusConfig, "KV_VERIFY_SAMPLES_DEFAULT=%q is not an integer in 1..%d", v, maxVerifySamples)
		}
		c.VerifySamplesDefault = n
	}
	if v, ok := env("KV_DEFAULT_MAX_REUSE"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return c, errorf(StatusConfig, "KV_DEFAULT_MAX_REUSE=%q is not an integer", v)
		}
		c.DefaultMaxReuse = n
	}
	if v, ok := env("KV_DEFAULT_TTL_SEC"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return c, errorf(StatusConfig, "KV_DEFAULT_TTL_SEC=%q is not a finite number of seconds", v)
		}
		c.DefaultTTLSec = f
		c.HasDefaultTTL = true
	}
	if v, ok := env("FORENSIC_HMAC_SECRET"); ok {
		c.HMACKey = []byte(v)
	}
	return c, nil
}

func env(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// normalize fills zero-means-default fields and validates the rest.
func (c *Config) normalize() error {
	if c.LogPath == "" {
		c.LogPath = DefaultLogPath
	}
	if math.IsNaN(c.CoverageThreshold) || c.CoverageThreshold < 0 || c.CoverageThreshold > 100 {
		return errorf(StatusConfig, "coverage_threshold %v is outside 0..100 (percent)", c.CoverageThreshold)
	}
	if c.MaxLogBytes == 0 {
		c.MaxLogBytes = DefaultMaxLogBytes
	}
	if c.MaxLogBytes > math.MaxInt64 {
		return errorf(StatusConfig, "max_log_bytes %d is too large", c.MaxLogBytes)
	}
	if c.VerifySamplesDefault == 0 {
		c.VerifySamplesDefault = DefaultVerifySamples
	}
	if c.VerifySamplesDefault < 0 || c.VerifySamplesDefault > maxVerifySamples {
		return errorf(StatusConfig, "verify_samples_default %d is outside 1..%d", c.VerifySamplesDefault, maxVerifySamples)
	}
	switch c.VerifyDefault {
	case VerifyDefault:
		c.VerifyDefault = VerifyFull
	case VerifyNone, VerifySampled, VerifyFull:
	default:
		return errorf(StatusConfig, "verify_default %d is not a kvh_verify_mode", c.VerifyDefault)
	}
	if c.HasDefaultTTL && (math.IsNaN(c.DefaultTTLSec) || math.IsInf(c.DefaultTTLSec, 0)) {
		return errorf(StatusConfig, "default_ttl_sec %v is not finite", c.DefaultTTLSec)
	}
	if c.TTLMode != TTLFromAlloc && c.TTLMode != TTLFromLastUse {
		return errorf(StatusConfig, "ttl_mode %d is not a kvh_ttl_mode", c.TTLMode)
	}
	if c.FsyncPolicy < FsyncInterval || c.FsyncPolicy > FsyncAlways {
		return errorf(StatusConfig, "fsync_policy %d is not a kvh_fsync_policy", c.FsyncPolicy)
	}
	if c.FsyncIntervalMS == 0 {
		c.FsyncIntervalMS = DefaultFsyncIntervalMS
	}
	if c.FSStatePath != "" && len(c.HMACKey) > 0 {
		return errorf(StatusConfig, "fs_state_path and hmac_key are exclusive (the forward-secure MAC replaces the static key; unset FORENSIC_HMAC_SECRET or hmac_key)")
	}
	if c.CheckpointDir != "" && c.CheckpointKeyPath == "" {
		return errorf(StatusConfig, "checkpoint_dir %q needs checkpoint_key_path", c.CheckpointDir)
	}
	if c.CheckpointEveryRecords == 0 {
		c.CheckpointEveryRecords = DefaultCheckpointRecords
	}
	if c.CheckpointEveryMS == 0 {
		c.CheckpointEveryMS = DefaultCheckpointMS
	}
	if c.Retention {
		if math.IsNaN(c.RetentionDays) || math.IsInf(c.RetentionDays, 0) || c.RetentionDays < 0 {
			return errorf(StatusConfig, "retention_days %v is not a finite number >= 0", c.RetentionDays)
		}
		if c.MaxRotated < -1 {
			return errorf(StatusConfig, "max_rotated %d is below -1 (no limit)", c.MaxRotated)
		}
		if c.RetentionDays == 0 && c.MaxRotated == -1 {
			return errorf(StatusConfig, "retention is on but neither retention_days nor max_rotated limits anything")
		}
	}
	if err := validateOptID("hmac_key_id", c.HMACKeyID); err != nil {
		return &Error{Code: StatusConfig, Msg: err.Error()}
	}
	return nil
}
