#!/usr/bin/env python3
"""Benchmarks of the Python bindings (kvhygiene), side by side in one run.

1. Lifecycle of a 4 KiB buffer through kvhygiene.CacheTracer:
   allocate -> mark_in_use -> sanitize (full read-back verify) -> free.
   Median per lifecycle over many samples. Target: <= 12 us (30x faster than
   the seed's ~360 us on the development machine, DESIGN.md section 8).
2. Releasing 1024 blocks of a vLLM-layout paged KV cache through
   kvhygiene.paged (one call: zeroize + full verify + one log record) versus
   NumPy zeroing the same bytes: ndarray.fill(0) per layer (contiguous, the
   best NumPy can do) and a per-block slice fill loop (what an engine that
   frees scattered blocks would do).

Usage: bench_lifecycle.py [--quick] [--json out.json]
Nothing here asserts; results are reported in benchmarks/results/python.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import numpy as np

import kvhygiene
from kvhygiene.paged import PagedKVCache


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def selected_kernel() -> str:
    """The library's host zeroize kernel, as reported by `kvgate doctor` if built."""
    forced = os.environ.get("KVH_CPU_KERNEL")
    here = os.path.dirname(os.path.abspath(__file__))
    kvgate = os.path.join(here, "..", "..", "build", "kvgate")
    if os.path.exists(kvgate):
        try:
            out = subprocess.run([kvgate, "doctor"], capture_output=True, text=True, timeout=30).stdout
            for line in out.splitlines():
                if "kernel" in line.lower():
                    return line.strip() + (f" (KVH_CPU_KERNEL={forced})" if forced else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return f"KVH_CPU_KERNEL={forced}" if forced else "unknown (build/kvgate not found)"


def bench_lifecycle(tmp: str, samples: int, rounds: int) -> Dict[str, Any]:
    per_round: List[float] = []
    all_ns: List[int] = []
    with kvhygiene.CacheTracer(os.path.join(tmp, "lifecycle.log"), fsync="interval") as t:
        # warm up (page faults, first log records, code paths)
        for _ in range(200):
            h = t.allocate(tenant_id="t", request_id="r", model_id="m", shape=(1024,), dtype="float32")
            t.mark_in_use(h)
            t.sanitize(h)
            t.free(h)
        pc = time.perf_counter_ns
        for _ in range(rounds):
            ns = []
            for _ in range(samples):
                t0 = pc()
                h = t.allocate(tenant_id="t", request_id="r", model_id="m", shape=(1024,), dtype="float32")
                t.mark_in_use(h)
                t.sanitize(h)
                t.free(h)
                ns.append(pc() - t0)
            per_round.append(statistics.median(ns) / 1000.0)
            all_ns.extend(ns)
        m = t.get_metrics()
        assert m["freed_total"] == m["allocations"]
    all_ns.sort()
    return {
        "bytes": 4096,
        "samples": len(all_ns),
        "median_us": statistics.median(all_ns) / 1000.0,
        "p10_us": all_ns[len(all_ns) // 10] / 1000.0,
        "p90_us": all_ns[len(all_ns) * 9 // 10] / 1000.0,
        "round_medians_us": [round(x, 2) for x in per_round],
        "seed_us_quoted": 360.0,
    }


def bench_breakdown(tmp: str, samples: int) -> Dict[str, Any]:
    """Per-call medians of the library-owned lifecycle, and the lifecycle of a
    caller-owned NumPy array registered with track() (no mmap/munmap)."""
    pc = time.perf_counter_ns
    parts: Dict[str, List[int]] = {"allocate": [], "mark_in_use": [], "sanitize": [], "free": []}
    tracked: List[int] = []
    arr = np.zeros(1024, dtype=np.float32)
    with kvhygiene.CacheTracer(os.path.join(tmp, "breakdown.log")) as t:
        for i in range(samples + 200):
            a = pc()
            h = t.allocate(tenant_id="t", request_id="r", model_id="m", shape=(1024,), dtype="float32")
            b = pc()
            t.mark_in_use(h)
            c = pc()
            t.sanitize(h)
            d = pc()
            t.free(h)
            e = pc()
            if i >= 200:
                for k, v in zip(parts, (b - a, c - b, d - c, e - d)):
                    parts[k].append(v)
        for i in range(samples + 200):
            a2 = pc()
            h2 = t.track(arr, tenant_id="t", request_id="r", model_id="m")
            t.mark_in_use(h2)
            t.sanitize(h2)
            t.free(h2)
            e2 = pc()
            if i >= 200:
                tracked.append(e2 - a2)
        # The same lifecycles through the bare ctypes functions (declared argtypes,
        # no errcheck, prebuilt arguments, no CacheTracer wrapper): separates the
        # ctypes/library cost from the wrapper's.
        from kvhygiene import _lib as L

        lib, tp, ts = L.hot(), t._tp(), t._ts()
        t.allocate(tenant_id="t", request_id="r", model_id="m", shape=(1024,), dtype="float32")  # fill ts.desc
        desc = ts.desc
        raw = {"raw_ctypes_library_owned_us": [], "raw_ctypes_caller_memory_us": []}
        ptr = arr.__array_interface__["data"][0]
        for key, p in (("raw_ctypes_library_owned_us", 0), ("raw_ctypes_caller_memory_us", ptr)):
            desc.ptr = p
            for i in range(samples + 200):
                a = pc()
                st = lib.kvh_allocate(tp, ts.pdesc, ts.pout)
                h = ts.out.value
                st |= lib.kvh_mark_in_use(tp, h, None)
                st |= lib.kvh_sanitize(tp, h, None, ts.pcov)
                st |= lib.kvh_free(tp, h)
                if i >= 200:
                    raw[key].append(pc() - a)
                if st:
                    raise RuntimeError(f"raw lifecycle failed: {L.last_error()}")
        desc.ptr = 0
        ts.last[:] = [None] * len(ts.last)
        del L
    out: Dict[str, Any] = {k: statistics.median(v) / 1000.0 for k, v in parts.items()}
    out["tracked_lifecycle_us"] = statistics.median(tracked) / 1000.0
    for k, v in raw.items():
        out[k] = statistics.median(v) / 1000.0
    return out


def c_floor(tmp: str, samples: int) -> Dict[str, Any]:
    """Build and run c_floor.c against the same library (needs cc)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    here = os.path.dirname(os.path.abspath(__file__))
    header_dir = os.path.join(here, "..", "..", "include")
    lib = kvhygiene.library_path()
    if not cc or not lib or not os.path.exists(os.path.join(header_dir, "kvhygiene.h")):
        return {"skipped": "no C compiler or header"}
    exe = os.path.join(tmp, "c_floor")
    # The executable needs the SONAME (libkvhygiene.so.1): link it to the very file Python loaded.
    libdir = os.path.join(tmp, "lib")
    os.makedirs(libdir, exist_ok=True)
    soname = os.path.join(libdir, "libkvhygiene.so.1")
    if not os.path.exists(soname):
        os.symlink(os.path.realpath(lib), soname)
    r = subprocess.run([cc, "-O2", "-I", header_dir, os.path.join(here, "c_floor.c"), soname,
                        f"-Wl,-rpath,{libdir}", "-o", exe], capture_output=True, text=True)
    if r.returncode != 0:
        return {"skipped": "compile failed: " + r.stderr[-300:]}
    r = subprocess.run([exe, tmp, str(samples)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return {"skipped": "run failed: " + r.stderr[-300:]}
    out: Dict[str, Any] = {}
    for line in r.stdout.splitlines():
        name, med, p10, p90 = line.split()
        out[name] = {"median_us": float(med), "p10_us": float(p10), "p90_us": float(p90)}
    return out


def bench_paged(tmp: str, layers: int, num_blocks: int, block_size: int, heads: int, head: int,
                rounds: int) -> Dict[str, Any]:
    caches = [np.zeros((2, num_blocks, block_size, heads, head), dtype=np.float16) for _ in range(layers)]
    block_bytes = block_size * heads * head * 2
    total = layers * 2 * num_blocks * block_bytes
    ids = np.arange(num_blocks, dtype=np.uint32)
    res: Dict[str, List[float]] = {"kvhygiene_release": [], "numpy_fill_per_layer": [], "numpy_fill_per_block": []}
    with kvhygiene.CacheTracer(os.path.join(tmp, "paged.log")) as t:
        with PagedKVCache(t, caches, model_id="bench", layout="flash_attn") as pool:
            for r in range(rounds + 1):
                for c in caches:
                    c.fill(1.0)  # dirty every block (not timed)
                pool.assign(ids, f"tenant-{r % 2}", f"req-{r}")
                t0 = time.perf_counter()
                cov = pool.release(ids)
                dt = time.perf_counter() - t0
                assert cov == 100.0 and not any(c.any() for c in caches)
                if r:
                    res["kvhygiene_release"].append(dt)

                for c in caches:
                    c.fill(1.0)
                t0 = time.perf_counter()
                for c in caches:
                    c.fill(0)
                dt = time.perf_counter() - t0
                if r:
                    res["numpy_fill_per_layer"].append(dt)

                for c in caches:
                    c.fill(1.0)
                t0 = time.perf_counter()
                for c in caches:
                    k, v = c[0], c[1]
                    for b in range(num_blocks):
                        k[b].fill(0)
                        v[b].fill(0)
                dt = time.perf_counter() - t0
                if r:
                    res["numpy_fill_per_block"].append(dt)
    out: Dict[str, Any] = {
        "layers": layers,
        "blocks": num_blocks,
        "block_shape": [block_size, heads, head],
        "dtype": "float16",
        "bytes": total,
        "rounds": rounds,
    }
    for k, v in res.items():
        med = statistics.median(v)
        out[k] = {"median_ms": med * 1e3, "gb_per_s": total / med / 1e9}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    ap.add_argument("--json", help="also write the results as JSON to this path")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kvh-bench-py-")
    try:
        lc = bench_lifecycle(tmp, samples=200 if a.quick else 1000, rounds=3 if a.quick else 7)
        bd = bench_breakdown(tmp, samples=1000 if a.quick else 5000)
        cf = c_floor(tmp, samples=2000 if a.quick else 7000)
        pg = bench_paged(tmp, layers=4, num_blocks=1024, block_size=16, heads=8, head=64,
                         rounds=3 if a.quick else 7)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    env = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "library": kvhygiene.version(),
        "library_path": kvhygiene.library_path(),
        "kernel": selected_kernel(),
    }
    result = {"env": env, "lifecycle_4k": lc, "breakdown_us": bd, "c_floor": cf, "paged_release_1024": pg}
    print(json.dumps(result, indent=2))
    print()
    print(f"4 KiB lifecycle (allocate+mark_in_use+sanitize(full verify)+free): median {lc['median_us']:.2f} us "
          f"(p10 {lc['p10_us']:.2f}, p90 {lc['p90_us']:.2f}; n={lc['samples']}); "
          f"seed ~360 us quoted -> {360.0 / lc['median_us']:.0f}x")
    print("  per call (median us): " + ", ".join(f"{k} {bd[k]:.2f}" for k in ("allocate", "mark_in_use", "sanitize", "free")))
    print(f"  track() of a caller-owned NumPy array, same lifecycle: median {bd['tracked_lifecycle_us']:.2f} us")
    print(f"  bare ctypes calls (no errcheck, no CacheTracer wrapper): library-owned {bd['raw_ctypes_library_owned_us']:.2f} us, "
          f"caller memory {bd['raw_ctypes_caller_memory_us']:.2f} us")
    for k, v in cf.items():
        if isinstance(v, dict):
            print(f"  C ABI directly ({k}): median {v['median_us']:.2f} us (p10 {v['p10_us']:.2f}, p90 {v['p90_us']:.2f})")
        else:
            print(f"  C floor: {v}")
    mb = pg["bytes"] / 2**20
    print(f"release 1024 blocks x {pg['layers']} layers ({mb:.0f} MiB):")
    for k in ("kvhygiene_release", "numpy_fill_per_layer", "numpy_fill_per_block"):
        print(f"  {k:24s} median {pg[k]['median_ms']:8.2f} ms  {pg[k]['gb_per_s']:6.1f} GB/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
