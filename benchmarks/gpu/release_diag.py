"""Where the host cost of one async pool release goes, condition by condition.

The same async release of 1024 blocks x 64 regions (enqueue only) is timed
after different things the calling thread did before it; each condition is
also timed with the caller's own single launch in its place (torch zero_ of
4 KiB, one cudaMemsetAsync), so what the machine charges any launch at that
point is separated from what kvhygiene adds. Medians (p10, p90) of --runs
runs; the first round is a warm-up. Run by tests/gpu/run.sh.

Usage: python3 benchmarks/gpu/release_diag.py [--runs N] [--out FILE]
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


def spin(sec):
    end = time.perf_counter() + sec
    while time.perf_counter() < end:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=51)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    import torch

    lib = K.Lib()
    tr = K.Tracer(lib, tempfile.mkdtemp(prefix="kvh-diag-"))
    stream = torch.cuda.current_stream().cuda_stream
    layers, nb, bs = 32, 1024, 32 << 10
    caches = [torch.empty(2, nb, bs, dtype=torch.uint8, device="cuda") for _ in range(layers)]
    regions = [(c[k].data_ptr(), bs, bs) for c in caches for k in (0, 1)]
    pool = tr.pool_register(regions, nb, stream=stream)
    blocks = list(range(nb))
    arr = (ctypes.c_uint32 * nb)(*blocks)
    rel, psync, h = lib.dll.kvh_pool_release, lib.dll.kvh_pool_sync, tr.h
    tiny = torch.empty(4096, dtype=torch.uint8, device="cuda")

    def release():
        st = rel(h, pool, arr, nb, K.KVH_RELEASE_ASYNC, None)
        assert st == 0, lib.dll.kvh_last_error()

    def control():
        tiny.zero_()

    conditions = [
        ("right after torch.cuda.synchronize()", lambda: None),
        ("synchronize, then 3 ms of Python spinning (host hot, GPU idle)", lambda: spin(0.003)),
        ("synchronize, then 2 ms asleep (host and GPU idle)", lambda: time.sleep(0.002)),
        ("synchronize, then one kvh call that enqueues nothing (kvh_pool_sync)", lambda: psync(h, pool, None)),
        ("synchronize, then one torch zero_ of 4 KiB", control),
        ("synchronize, then 128 MiB of torch zero_ (GPU busy)", lambda: (caches[0].zero_(), caches[1].zero_())),
    ]
    res = {}
    for rnd in range(a.runs + 1):
        for name, prep in conditions:
            for what, f in (("kvh", release), ("torch", control)):
                tr.pool_assign(pool, blocks)
                torch.cuda.synchronize()
                prep()
                t = time.perf_counter()
                f()
                el = time.perf_counter() - t
                if what == "kvh":
                    tr.pool_sync(pool)
                else:
                    tr.pool_release(pool, blocks)
                if rnd > 0:
                    res.setdefault((name, what), []).append(el)
    tr.pool_unregister(pool, force=True)
    tr.close()

    def fmt(xs):
        xs = sorted(xs)
        return f"{statistics.median(xs) * 1e6:.1f} ({xs[len(xs) // 10] * 1e6:.1f}, {xs[len(xs) * 9 // 10] * 1e6:.1f})"

    out = [f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; medians (p10, p90) of {a.runs}", "",
           "| before the timed call | async kvh_pool_release, 1024 blocks x 64 regions | torch zero_ of 4 KiB in its place | ratio of medians |",
           "|---|---|---|---|"]
    for name, _ in conditions:
        k, c = res[(name, "kvh")], res[(name, "torch")]
        out.append(f"| {name} | {fmt(k)} µs | {fmt(c)} µs | {statistics.median(k) / statistics.median(c):.1f}x |")
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
