package main

/*
#include <stdlib.h>
#include "kvh_internal.h"
*/
import "C"

import (
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core"
)

// seedEnv are the variables ConfigFromEnv reads.
var seedEnv = []string{
	"KV_COVERAGE_THRESHOLD", "KV_DOUBLE_PASS_DEFAULT", "KV_VERIFY_SAMPLES_DEFAULT",
	"KV_DEFAULT_MAX_REUSE", "KV_DEFAULT_TTL_SEC", "FORENSIC_HMAC_SECRET",
}

// syncEnv copies the seed's variables from the C environment into Go's. The
// Go runtime snapshots the environment when the library is loaded, so a host
// that calls setenv (or Python's os.environ) afterwards would otherwise not be
// seen. Only a value that differs is written.
func syncEnv() {
	for _, name := range seedEnv {
		cname := C.CString(name)
		p := C.getenv(cname)
		C.free(unsafe.Pointer(cname))
		goVal, goOK := os.LookupEnv(name)
		switch {
		case p == nil && goOK:
			_ = os.Unsetenv(name)
		case p != nil:
			if v := C.GoString(p); !goOK || v != goVal {
				_ = os.Setenv(name, v)
			}
		}
	}
}

// interned holds C copies of strings handed out by kvh_config_init; they live
// for the life of the process (one per distinct value).
var interned struct {
	sync.Mutex
	m map[string]*C.char
}

func cStatic(s string) *C.char {
	interned.Lock()
	defer interned.Unlock()
	if p, ok := interned.m[s]; ok {
		return p
	}
	if interned.m == nil {
		interned.m = make(map[string]*C.char)
	}
	p := C.CString(s)
	interned.m[s] = p
	return p
}

func boolC(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}

//export kvhgo_config_init
func kvhgo_config_init(config *C.kvh_config) (st C.kvh_status) {
	const fn = "kvh_config_init"
	defer recoverPanic(fn, &st, faultsPanic())
	if config == nil {
		return ret(fn, argErr(stNullArg, "config is NULL"))
	}
	syncEnv()
	c, err := core.ConfigFromEnv()
	if err != nil {
		return ret(fn, err)
	}
	*config = C.kvh_config{}
	config.struct_size = C.uint32_t(unsafe.Sizeof(*config))
	config.log_path = cStatic(c.LogPath)
	if len(c.HMACKey) > 0 {
		cname := C.CString("FORENSIC_HMAC_SECRET")
		p := C.getenv(cname)
		C.free(unsafe.Pointer(cname))
		if p == nil || C.GoString(p) != string(c.HMACKey) {
			p = cStatic(string(c.HMACKey))
		}
		config.hmac_key = (*C.uint8_t)(unsafe.Pointer(p))
		config.hmac_key_len = C.size_t(len(c.HMACKey))
	}
	if c.HMACKeyID != "" {
		config.hmac_key_id = cStatic(c.HMACKeyID)
	}
	config.coverage_threshold = C.double(c.CoverageThreshold)
	config.max_log_bytes = C.uint64_t(c.MaxLogBytes)
	config.double_pass_default = boolC(c.DoublePassDefault)
	config.verify_samples_default = C.int32_t(c.VerifySamplesDefault)
	config.verify_default = C.int32_t(c.VerifyDefault)
	config.default_max_reuse = C.int64_t(c.DefaultMaxReuse)
	config.default_ttl_sec = C.double(c.DefaultTTLSec)
	config.has_default_ttl = boolC(c.HasDefaultTTL)
	config.ttl_mode = C.int32_t(c.TTLMode)
	config.sweep_interval_ms = C.uint32_t(c.SweepIntervalMS)
	config.fsync_policy = C.int32_t(c.FsyncPolicy)
	config.fsync_interval_ms = C.uint32_t(c.FsyncIntervalMS)
	if c.CheckpointDir != "" {
		config.checkpoint_dir = cStatic(c.CheckpointDir)
	}
	if c.CheckpointKeyPath != "" {
		config.checkpoint_key_path = cStatic(c.CheckpointKeyPath)
	}
	config.checkpoint_every_records = C.uint32_t(c.CheckpointEveryRecords)
	config.checkpoint_every_ms = C.uint32_t(c.CheckpointEveryMS)
	config.metrics_tenant_labels = boolC(c.MetricsTenantLabels)
	config.retention = boolC(c.Retention)
	config.retention_days = C.double(c.RetentionDays)
	config.max_rotated = C.int32_t(c.MaxRotated)
	if c.ArchiveDir != "" {
		config.archive_dir = cStatic(c.ArchiveDir)
	}
	return statusC(stOK)
}

// maxKeyLen bounds HMAC key lengths.
const maxKeyLen = 1 << 16

// readKey copies a (pointer, length) key.
func readKey(what string, p *C.uint8_t, n C.size_t) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	if n == 0 {
		return nil, argErr(stInvalidArg, "%s is set but %s_len is 0", what, what)
	}
	if uint64(n) > maxKeyLen {
		return nil, argErr(stInvalidArg, "%s_len %d exceeds %d bytes", what, uint64(n), maxKeyLen)
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n)), nil
}

func flag01(what string, v C.int32_t) (bool, error) {
	switch v {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, argErr(core.StatusConfig, "config->%s is %d; use 0 or 1", what, int32(v))
}

// configFromC translates a kvh_config (struct_size already checked).
func configFromC(c *C.kvh_config) (core.Config, error) {
	var g core.Config
	var err error
	if g.LogPath, err = optPathArg("config->log_path", readPath(c.log_path)); err != nil {
		return g, err
	}
	if c.hmac_key != nil {
		if g.HMACKey, err = readKey("config->hmac_key", c.hmac_key, c.hmac_key_len); err != nil {
			return g, err
		}
	} else {
		cname := C.CString("FORENSIC_HMAC_SECRET")
		p := C.getenv(cname)
		C.free(unsafe.Pointer(cname))
		if p != nil {
			if v := strings.TrimSpace(C.GoString(p)); v != "" {
				g.HMACKey = []byte(v)
			}
		}
	}
	if c.hmac_key_id != nil {
		id := readID(c.hmac_key_id)
		if id.tooLong {
			return g, argErr(core.StatusConfig, "config->hmac_key_id is longer than %d bytes", maxIDLen)
		}
		g.HMACKeyID = id.s // core validates it
	}
	g.CoverageThreshold = float64(c.coverage_threshold)
	g.MaxLogBytes = uint64(c.max_log_bytes)
	if g.DoublePassDefault, err = flag01("double_pass_default", c.double_pass_default); err != nil {
		return g, err
	}
	g.VerifySamplesDefault = int(c.verify_samples_default)
	g.VerifyDefault = core.VerifyMode(c.verify_default)
	g.DefaultMaxReuse = int64(c.default_max_reuse)
	g.DefaultTTLSec = float64(c.default_ttl_sec)
	if g.HasDefaultTTL, err = flag01("has_default_ttl", c.has_default_ttl); err != nil {
		return g, err
	}
	g.TTLMode = core.TTLMode(c.ttl_mode)
	g.SweepIntervalMS = uint32(c.sweep_interval_ms)
	g.FsyncPolicy = int32(c.fsync_policy)
	g.FsyncIntervalMS = uint32(c.fsync_interval_ms)
	if g.CheckpointDir, err = optPathArg("config->checkpoint_dir", readPath(c.checkpoint_dir)); err != nil {
		return g, err
	}
	if g.CheckpointKeyPath, err = optPathArg("config->checkpoint_key_path", readPath(c.checkpoint_key_path)); err != nil {
		return g, err
	}
	g.CheckpointEveryRecords = uint32(c.checkpoint_every_records)
	g.CheckpointEveryMS = uint32(c.checkpoint_every_ms)
	if g.MetricsTenantLabels, err = flag01("metrics_tenant_labels", c.metrics_tenant_labels); err != nil {
		return g, err
	}
	if g.Retention, err = flag01("retention", c.retention); err != nil {
		return g, err
	}
	g.RetentionDays = float64(c.retention_days)
	g.MaxRotated = int(c.max_rotated)
	if g.ArchiveDir, err = optPathArg("config->archive_dir", readPath(c.archive_dir)); err != nil {
		return g, err
	}
	if g.FSStatePath, err = optPathArg("config->fs_state_path", readPath(c.fs_state_path)); err != nil {
		return g, err
	}
	return g, nil
}

//export kvhgo_tracer_open
func kvhgo_tracer_open(config *C.kvh_config, out *C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_tracer_open"
	defer recoverPanic(fn, &st, faultsPanic())
	if out == nil {
		return ret(fn, argErr(stNullArg, "out is NULL"))
	}
	var cfg core.Config
	var err error
	if config == nil {
		syncEnv()
		cfg, err = core.ConfigFromEnv()
	} else if config.struct_size != C.uint32_t(unsafe.Sizeof(*config)) {
		err = argErr(stStructSize, "config->struct_size is %d; this library knows %d (sizeof(kvh_config))",
			uint32(config.struct_size), unsafe.Sizeof(*config))
	} else {
		cfg, err = configFromC(config)
	}
	if err != nil {
		return ret(fn, err)
	}
	t, err := core.Open(cfg)
	if err != nil {
		return ret(fn, err)
	}
	token, err := tracers.add(t)
	if err != nil {
		_ = t.Close()
		return ret(fn, err)
	}
	*out = C.uint64_t(token)
	return statusC(stOK)
}

//export kvhgo_tracer_close
func kvhgo_tracer_close(tracer C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_tracer_close"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracers.remove(uint64(tracer))
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, t.Close())
}

// tracerOf resolves a tracer token.
func tracerOf(tracer C.uint64_t) (*core.Tracer, error) { return tracers.get(uint64(tracer)) }
