package main

/*
#include "kvh_internal.h"
*/
import "C"

import (
	"strings"
)

//export kvhgo_metrics_json
func kvhgo_metrics_json(tracer C.uint64_t, buf *C.char, capacity C.size_t, outLen *C.size_t) (st C.kvh_status) {
	const fn = "kvh_metrics_json"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	if buf == nil && capacity != 0 {
		return ret(fn, argErr(stNullArg, "buf is NULL but cap is %d", uint64(capacity)))
	}
	js, err := t.MetricsJSON()
	if err != nil {
		return ret(fn, err)
	}
	if outLen != nil {
		*outLen = C.size_t(len(js))
	}
	if !copyToC(buf, capacity, js) {
		if buf == nil {
			// size query: buf NULL, cap 0
			return ret(fn, tooSmall("buf", 0, len(js)))
		}
		return ret(fn, tooSmall("buf", uint64(capacity), len(js)))
	}
	return statusC(stOK)
}

// pathOp runs an export to a path.
func pathOp(fn string, path *C.char, op func(string) error) C.kvh_status {
	p, err := pathArg("path", readPath(path))
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, op(p))
}

//export kvhgo_export_metrics
func kvhgo_export_metrics(tracer C.uint64_t, path *C.char) (st C.kvh_status) {
	const fn = "kvh_export_metrics"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	return pathOp(fn, path, t.ExportMetrics)
}

//export kvhgo_export_prometheus
func kvhgo_export_prometheus(tracer C.uint64_t, path *C.char) (st C.kvh_status) {
	const fn = "kvh_export_prometheus"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	return pathOp(fn, path, t.ExportPrometheus)
}

// serveAddr normalizes a kvh_metrics_serve address: NULL binds 127.0.0.1 on
// an ephemeral port, ":port" binds 127.0.0.1:port.
func serveAddr(c cstr) (string, error) {
	switch {
	case c.null:
		return "127.0.0.1:0", nil
	case c.tooLong || len(c.s) > 512:
		return "", argErr(stInvalidArg, "addr is too long")
	case c.s == "":
		return "", argErr(stInvalidArg, "addr is empty")
	case strings.ContainsAny(c.s, " \t\r\n\"/"):
		return "", argErr(stInvalidArg, "addr %q is not host:port", c.s)
	case strings.HasPrefix(c.s, ":"):
		return "127.0.0.1" + c.s, nil
	}
	return c.s, nil
}

//export kvhgo_metrics_serve
func kvhgo_metrics_serve(tracer C.uint64_t, addr *C.char, bound *C.char, capacity C.size_t) (st C.kvh_status) {
	const fn = "kvh_metrics_serve"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	if bound == nil && capacity != 0 {
		return ret(fn, argErr(stNullArg, "bound_addr is NULL but cap is %d", uint64(capacity)))
	}
	a, err := serveAddr(readCStr(addr, 1024))
	if err != nil {
		return ret(fn, err)
	}
	b, err := t.ServeMetrics(a)
	if err != nil {
		return ret(fn, err)
	}
	if bound != nil && !copyToC(bound, capacity, []byte(b)) {
		_ = t.StopMetrics()
		return ret(fn, tooSmall("bound_addr", uint64(capacity), len(b)))
	}
	return statusC(stOK)
}

//export kvhgo_metrics_stop
func kvhgo_metrics_stop(tracer C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_metrics_stop"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, t.StopMetrics())
}
