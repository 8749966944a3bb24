package main

/*
#include "kvh_internal.h"
*/
import "C"

import (
	"time"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// logVerifyFlagsKnown is KVH_LOGVERIFY_ALL.
const logVerifyFlagsKnown = 0x1

// maxKeyText bounds the key texts of kvh_verify_opts (note verifier keys,
// forward-secure verification keys).
const maxKeyText = 4096

// keyText reads an optional key text (NULL = none).
func keyText(what string, p *C.char) (string, error) {
	if p == nil {
		return "", nil
	}
	k := readCStr(p, maxKeyText)
	if k.tooLong {
		return "", argErr(stInvalidArg, "%s is longer than %d bytes", what, maxKeyText)
	}
	return k.s, nil
}

// verifyOptsFromC reads kvh_verify_opts; NULL means no key, no checkpoints,
// this file only.
func verifyOptsFromC(o *C.kvh_verify_opts) (forensic.VerifyOptions, bool, error) {
	var v forensic.VerifyOptions
	if o == nil {
		return v, false, nil
	}
	if o.struct_size != C.uint32_t(unsafe.Sizeof(*o)) {
		return v, false, argErr(stStructSize, "opts->struct_size is %d; this library knows %d (sizeof(kvh_verify_opts))",
			uint32(o.struct_size), unsafe.Sizeof(*o))
	}
	if uint32(o.flags)&^logVerifyFlagsKnown != 0 {
		return v, false, argErr(stInvalidArg, "opts->flags has unknown bits %#x", uint32(o.flags)&^logVerifyFlagsKnown)
	}
	var err error
	if v.HMACKey, err = readKey("opts->hmac_key", o.hmac_key, o.hmac_key_len); err != nil {
		return v, false, err
	}
	if v.CheckpointDir, err = optPathArg("opts->checkpoint_dir", readPath(o.checkpoint_dir)); err != nil {
		return v, false, err
	}
	if v.PublicKey, err = keyText("opts->public_key", o.public_key); err != nil {
		return v, false, err
	}
	if v.FSVerifyKey, err = keyText("opts->fs_verify_key", o.fs_verify_key); err != nil {
		return v, false, err
	}
	if v.FSVerifyKey != "" && len(v.HMACKey) > 0 {
		return v, false, argErr(stInvalidArg, "opts->fs_verify_key and opts->hmac_key are exclusive")
	}
	switch {
	case o.fs_now_unix < 0:
		return v, false, argErr(stInvalidArg, "opts->fs_now_unix is %d; use Unix seconds, or 0 for no freshness check", int64(o.fs_now_unix))
	case o.fs_now_unix > 0 && v.FSVerifyKey == "":
		return v, false, argErr(stInvalidArg, "opts->fs_now_unix is set but opts->fs_verify_key is NULL")
	case o.fs_now_unix > 0:
		v.FSNow = time.Unix(int64(o.fs_now_unix), 0)
	}
	if v.CheckpointDir != "" && v.PublicKey == "" {
		return v, false, argErr(stInvalidArg, "opts->checkpoint_dir is set but opts->public_key is NULL")
	}
	return v, uint32(o.flags)&logVerifyFlagsKnown != 0, nil
}

//export kvhgo_log_verify
func kvhgo_log_verify(path *C.char, opts *C.kvh_verify_opts, outOK *C.int32_t, outRecords *C.uint64_t,
	report *C.char, capacity C.size_t, outLen *C.size_t) (st C.kvh_status) {
	const fn = "kvh_log_verify"
	defer recoverPanic(fn, &st, faultsPanic())
	p, err := pathArg("path", readPath(path))
	if err != nil {
		return ret(fn, err)
	}
	switch {
	case outOK == nil:
		return ret(fn, argErr(stNullArg, "out_ok is NULL"))
	case outRecords == nil:
		return ret(fn, argErr(stNullArg, "out_records is NULL"))
	case report == nil && capacity != 0:
		return ret(fn, argErr(stNullArg, "report is NULL but cap is %d", uint64(capacity)))
	}
	vo, all, err := verifyOptsFromC(opts)
	if err != nil {
		return ret(fn, err)
	}
	verify := forensic.VerifyChain
	if all {
		verify = forensic.VerifyAll
	}
	res, err := verify(p, vo)
	if err != nil {
		return ret(fn, argErr(stIO, "%s: %v", p, err))
	}
	if res.OK {
		*outOK = 1
	} else {
		*outOK = 0
	}
	*outRecords = C.uint64_t(res.Records)
	if report == nil && outLen == nil {
		return statusC(stOK)
	}
	js := res.JSON()
	if outLen != nil {
		*outLen = C.size_t(len(js))
	}
	if report == nil {
		return statusC(stOK)
	}
	if !copyToC(report, capacity, js) {
		return ret(fn, tooSmall("report", uint64(capacity), len(js)))
	}
	return statusC(stOK)
}

//export kvhgo_checkpoint
func kvhgo_checkpoint(tracer C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_checkpoint"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, t.Checkpoint())
}

//export kvhgo_log_flush
func kvhgo_log_flush(tracer C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_log_flush"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, t.Flush())
}
