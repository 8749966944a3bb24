"""Threads and processes: concurrent lifecycles, fork safety, spawn."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import kvhygiene
from kvhygiene import CacheTracer, ForensicLogger

from conftest import read_records

THREADS = 8
PER_THREAD = 25


def test_eight_threads_of_lifecycles(log_path: Path) -> None:
    errors = []
    handles = []
    lock = threading.Lock()
    with CacheTracer(log_path) as t:
        start = threading.Barrier(THREADS)

        def worker(i: int) -> None:
            try:
                start.wait()
                for j in range(PER_THREAD):
                    h = t.allocate(tenant_id=f"tenant-{i}", request_id=f"r{i}-{j}", model_id="m", shape=(1024,))
                    t.bind(h, stream_id=f"s{i}")
                    t.mark_in_use(h, tenant_id=f"tenant-{i}")
                    assert t.sanitize(h) == 100.0
                    t.free(h)
                    with lock:
                        handles.append(h)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        ths = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(timeout=120)
        assert not any(th.is_alive() for th in ths), "a worker hung"
        assert not errors, errors
        m = t.get_metrics()
        n = THREADS * PER_THREAD
        assert m["allocations"] == n and m["freed_total"] == n
        assert m["quarantine_count"] == 0 and m["min_coverage_pct"] == 100.0
    assert len(set(handles)) == THREADS * PER_THREAD
    res = ForensicLogger.verify_chain(log_path)
    assert res["ok"] is True, res
    recs = read_records(log_path)
    assert res["lines"] == len(recs)
    c = Counter(r["event_type"] for r in recs)
    n = THREADS * PER_THREAD
    for ev in ("allocate", "bind", "write", "sanitize_start", "sanitize_end", "free"):
        assert c[ev] == n, (ev, c)


def _child_call(tracer: CacheTracer, q) -> None:  # runs in the forked child
    t0 = time.monotonic()
    try:
        tracer.allocate(tenant_id="t", request_id="r", model_id="m", shape=(16,))
        q.put(("no-error", time.monotonic() - t0))
    except kvhygiene.ForkedError as e:
        q.put(("forked", time.monotonic() - t0, e.status))
    except BaseException as e:  # noqa: BLE001
        q.put(("other", repr(e)))


def test_forked_child_gets_forked_error_not_a_hang(tracer: CacheTracer) -> None:
    h = tracer.allocate(tenant_id="t", request_id="r", model_id="m", shape=(16,))
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_call, args=(tracer, q))
    p.start()
    p.join(timeout=30)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail("forked child hung calling into libkvhygiene")
    res = q.get(timeout=5)
    assert res[0] == "forked", res
    assert res[1] < 1.0, f"ForkedError took {res[1]:.3f}s"
    assert res[2] == 21
    # the parent is unaffected
    assert tracer.sanitize(h) == 100.0
    tracer.free(h)


def _spawn_child(log: str, q) -> None:
    import kvhygiene as k

    with k.CacheTracer(log) as t:
        h = t.allocate(tenant_id="t", request_id="r", model_id="m", shape=(64,))
        q.put(t.sanitize(h))
        t.free(h)


def test_spawned_child_uses_the_library(tmp_path: Path, tracer: CacheTracer) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_spawn_child, args=(str(tmp_path / "child.log"), q))
    p.start()
    p.join(timeout=60)
    assert p.exitcode == 0
    assert q.get(timeout=5) == 100.0
    assert ForensicLogger.verify_chain(tmp_path / "child.log")["ok"] is True
