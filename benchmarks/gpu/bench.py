"""GPU benchmarks through libkvhygiene's C ABI with torch tensors.

  contiguous zeroize (>= 256 MiB) vs torch zero_ (cudaMemsetAsync)
  scatter zeroize of 2 GiB in 32 KiB regions in one pool release vs contiguous zero_
  full verification cost (sanitize verify=full minus verify=none)
  host-side cost of one async pool release of 1024 blocks vs 1024 zero_ calls

Medians of --runs runs; wall clock around the call plus torch.cuda.synchronize().
Usage: python3 benchmarks/gpu/bench.py [--out FILE] [--runs N]
"""
import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "gpu"))
import kvh_ctypes as K  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--runs", type=int, default=9)
    a = ap.parse_args()
    import torch

    lib = K.Lib()
    tr = K.Tracer(lib, tempfile.mkdtemp(prefix="kvh-bench-"))
    stream = torch.cuda.current_stream().cuda_stream
    rows = []

    def med(f, runs=a.runs):
        f()
        xs = []
        for _ in range(runs):
            torch.cuda.synchronize()
            t = time.perf_counter()
            f()
            torch.cuda.synchronize()
            xs.append(time.perf_counter() - t)
        return statistics.median(xs)

    def row(name, nbytes, sec, extra=""):
        rows.append(f"| {name} | {nbytes >> 20} MiB | {sec * 1e6:.1f} µs | {nbytes / sec / 1e9:.0f} GB/s | {extra} |")

    def sanitize_opts(verify):
        o = K.SanitizeOpts()
        o.struct_size = ctypes.sizeof(K.SanitizeOpts)
        o.verify = verify
        return o

    for size in (256 << 20, 1 << 30):
        x = torch.empty(size, dtype=torch.uint8, device="cuda")
        h = tr.allocate_cuda(x.data_ptr(), size, stream=stream)
        row("torch zero_ (cudaMemsetAsync)", size, med(lambda: x.zero_()))
        for verify, name in ((1, "kvh_sanitize verify=none"), (3, "kvh_sanitize verify=full")):
            o = sanitize_opts(verify)
            cov = ctypes.c_double()
            row(name, size, med(lambda: lib.call("kvh_sanitize", tr.h, h, ctypes.byref(o), ctypes.byref(cov))))
        del x

    # Scatter: 2 GiB in 32 KiB regions = every other 32 KiB block of a 4 GiB tensor.
    big = torch.empty(4 << 30, dtype=torch.uint8, device="cuda")
    nblocks = (4 << 30) // (64 << 10)
    pool = tr.pool_register([(big.data_ptr(), 64 << 10, 32 << 10)], nblocks, stream=stream)
    blocks = list(range(nblocks))
    arr = (ctypes.c_uint32 * nblocks)(*blocks)

    def release():
        tr.pool_assign(pool, blocks)
        t = time.perf_counter()
        cov = ctypes.c_double()
        lib.call("kvh_pool_release", tr.h, pool, arr, nblocks, 0, ctypes.byref(cov))
        return time.perf_counter() - t

    release()
    xs = []
    for _ in range(a.runs):
        torch.cuda.synchronize()
        xs.append(release())
    row("kvh_pool_release 65536 × 32 KiB (one call, verify=full)", 2 << 30, statistics.median(xs))
    half = big[: 2 << 30]
    row("torch zero_ contiguous 2 GiB", 2 << 30, med(lambda: half.zero_()))
    tr.pool_unregister(pool, force=True)
    del big, half

    # Host-side cost: one async release of 1024 blocks vs 1024 zero_ calls.
    layers, nb, bs = 32, 1024, 16 * 8 * 128 * 2
    caches = [torch.empty(2, nb, bs, dtype=torch.uint8, device="cuda") for _ in range(layers)]
    regions = []
    for c in caches:
        regions += [(c[0].data_ptr(), bs, bs), (c[1].data_ptr(), bs, bs)]
    pool = tr.pool_register(regions, nb, stream=stream)
    blocks = list(range(0, nb))
    arr = (ctypes.c_uint32 * len(blocks))(*blocks)
    hruns = max(a.runs, 51)  # host costs are a few µs: more runs for a stable median
    host = []
    for _ in range(hruns):
        tr.pool_assign(pool, blocks)
        torch.cuda.synchronize()
        t = time.perf_counter()
        lib.call("kvh_pool_release", tr.h, pool, arr, len(blocks), K.KVH_RELEASE_ASYNC, None)
        host.append(time.perf_counter() - t)
        tr.pool_sync(pool)
    # The same release 2 ms after the assign and the synchronize: the log
    # writer has long finished the pool_assign record.
    idle = []
    for _ in range(hruns):
        tr.pool_assign(pool, blocks)
        torch.cuda.synchronize()
        time.sleep(0.002)
        t = time.perf_counter()
        lib.call("kvh_pool_release", tr.h, pool, arr, len(blocks), K.KVH_RELEASE_ASYNC, None)
        idle.append(time.perf_counter() - t)
        tr.pool_sync(pool)
    # Control: the caller's own single memset (torch zero_ of 4 KiB, one
    # cudaMemsetAsync) at the same two points, right after the synchronize
    # and 2 ms later, and back to back: how much of the cost after a
    # synchronize or an idle period is the machine's, whatever is called.
    tiny = torch.empty(4096, dtype=torch.uint8, device="cuda")
    ctl = {"sync": [], "idle": [], "busy": []}
    for _ in range(hruns):
        for k in ("sync", "idle"):
            tr.pool_assign(pool, blocks)
            torch.cuda.synchronize()
            if k == "idle":
                time.sleep(0.002)
            t = time.perf_counter()
            tiny.zero_()
            ctl[k].append(time.perf_counter() - t)
            tr.pool_release(pool, blocks)
        for i in range(8):
            t = time.perf_counter()
            tiny.zero_()
            if i >= 4:  # the host thread busy, the memsets queued behind each other
                ctl["busy"].append(time.perf_counter() - t)
    # Engine-like: the GPU busy with earlier releases, the host issuing them
    # back to back (16 releases of 1024 blocks each from a 16384-block pool of
    # the same 64 regions, 4 KiB blocks: the host cost does not depend on the
    # block size).
    bbs = 4096
    big_caches = [torch.empty(2, 16 * nb, bbs, dtype=torch.uint8, device="cuda") for _ in range(layers)]
    bregions = [(c[k].data_ptr(), bbs, bbs) for c in big_caches for k in (0, 1)]
    bpool = tr.pool_register(bregions, 16 * nb, stream=stream)
    chunks = [(ctypes.c_uint32 * nb)(*range(i * nb, (i + 1) * nb)) for i in range(16)]
    busy = []
    for rnd in range(max(3, hruns // 16) + 1):
        for c in chunks:
            lib.call("kvh_pool_assign", tr.h, bpool, c, nb, b"tenant-a", b"req-1")
        torch.cuda.synchronize()
        for c in chunks:
            t = time.perf_counter()
            lib.call("kvh_pool_release", tr.h, bpool, c, nb, K.KVH_RELEASE_ASYNC, None)
            if rnd > 0:  # the first round allocates the 16 in-flight slots (pinned memory, events)
                busy.append(time.perf_counter() - t)
        tr.pool_sync(bpool)
    tr.pool_unregister(bpool, force=True)
    del big_caches
    # Floors: a ctypes call into C that does nothing, and a pool call that
    # enters Go and the tracer but enqueues nothing (kvh_pool_sync, nothing pending).
    floor, gofloor = [], []
    for _ in range(hruns):
        t = time.perf_counter()
        getattr(lib.dll, "kvh_version_number")()  # what lib.call does, less the status check
        floor.append(time.perf_counter() - t)
        t = time.perf_counter()
        lib.call("kvh_pool_sync", tr.h, pool, None)
        gofloor.append(time.perf_counter() - t)
    # The same 2 GiB pool released synchronously (zeroize + full verify) end to end.
    sync = []
    for _ in range(a.runs):
        tr.pool_assign(pool, blocks)
        torch.cuda.synchronize()
        t = time.perf_counter()
        cov = ctypes.c_double()
        lib.call("kvh_pool_release", tr.h, pool, arr, len(blocks), 0, ctypes.byref(cov))
        sync.append(time.perf_counter() - t)
    row(f"kvh_pool_release 1024 blocks × {2 * layers} regions × 32 KiB (sync, verify=full)", nb * 2 * layers * bs, statistics.median(sync))
    views = [c[kv, b] for c in caches[:1] for kv in (0, 1) for b in range(nb // 2)]  # 1024 views
    host2 = []
    for _ in range(a.runs):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for v in views:
            v.zero_()
        host2.append(time.perf_counter() - t)
    torch.cuda.synchronize()
    tr.pool_unregister(pool, force=True)
    tr.close()

    out = [f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; medians of {a.runs}", "",
           "| case | bytes | median | GB/s | |", "|---|---|---|---|---|", *rows, "",
           "| host-side cost | median |", "|---|---|",
           f"| one async kvh_pool_release of 1024 blocks × {2 * layers} regions ({1024 * 2 * layers} ranges, enqueue only) | {statistics.median(host) * 1e6:.1f} µs |",
           f"| the same, 2 ms after the assign (host and GPU idle) | {statistics.median(idle) * 1e6:.1f} µs |",
           f"| back to back while the GPU works: 16 async releases of 1024 blocks × {2 * layers} regions in a row | {statistics.median(busy) * 1e6:.1f} µs |",
           f"| control: one torch zero_ of 4 KiB (one cudaMemsetAsync) right after the synchronize / 2 ms later / back to back | {statistics.median(ctl['sync']) * 1e6:.1f} / {statistics.median(ctl['idle']) * 1e6:.1f} / {statistics.median(ctl['busy']) * 1e6:.1f} µs |",
           f"| floor: one ctypes call into C (kvh_version_number) | {statistics.median(floor) * 1e6:.1f} µs |",
           f"| floor: one pool call into Go that enqueues nothing (kvh_pool_sync, nothing pending) | {statistics.median(gofloor) * 1e6:.1f} µs |",
           f"| 1024 separate torch zero_ calls (cudaMemsetAsync each) | {statistics.median(host2) * 1e6:.1f} µs |"]
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
