"""Real memory: zero-copy views, tracked NumPy arrays / torch tensors, the buffer() context."""

from __future__ import annotations

from pathlib import Path

import pytest

import kvhygiene
from kvhygiene import CacheTracer

from conftest import alloc, need_numpy, records_for


def test_array_is_a_zero_copy_view(tracer: CacheTracer) -> None:
    np = need_numpy()
    h = alloc(tracer, shape=(8, 128), dtype="float16")
    a = tracer.array(h)
    assert a.shape == (8, 128) and a.dtype == np.float16
    info = tracer.info(h)
    assert a.__array_interface__["data"][0] == info.ptr
    assert a.nbytes == info.nbytes == 8 * 128 * 2
    a[:] = 3.5
    again = tracer.array(h)
    assert float(again[7, 127]) == 3.5  # same memory
    tracer.mark_in_use(h)
    assert tracer.sanitize(h) == 100.0
    assert not a.any()  # the library zeroized the memory the view aliases
    tracer.free(h)


def test_array_with_other_dtype_and_shape(tracer: CacheTracer) -> None:
    np = need_numpy()
    h = alloc(tracer, shape=(64,), dtype="int32")
    b = tracer.array(h, dtype="uint8", shape=(16, 16))
    assert b.shape == (16, 16) and b.dtype == np.uint8
    tracer.sanitize(h)
    tracer.free(h)


def test_nbytes_follow_numpy_dtypes(tracer: CacheTracer) -> None:
    need_numpy()
    for dtype, size in (("float32", 4), ("float64", 8), ("int8", 1), ("bfloat16", 2), ("float16", 2)):
        h = alloc(tracer, shape=(3, 5), dtype=dtype)
        assert tracer.info(h).nbytes == 15 * size, dtype
        tracer.sanitize(h)
        tracer.free(h)


def test_bad_allocation_arguments(tracer: CacheTracer) -> None:
    with pytest.raises(kvhygiene.InvalidArgumentError):
        alloc(tracer, shape=(-1, 4))
    with pytest.raises(kvhygiene.InvalidArgumentError):
        alloc(tracer, dtype="not-a-dtype")
    with pytest.raises(kvhygiene.InvalidArgumentError):
        alloc(tracer, device="tpu:0")


def test_track_numpy_array_zeroizes_caller_memory(tracer: CacheTracer, log_path: Path) -> None:
    np = need_numpy()
    arr = np.random.default_rng(1).random((16, 64), dtype=np.float32) + 1.0
    h = tracer.track(arr, tenant_id="t", request_id="r", model_id="m")
    info = tracer.info(h)
    assert info.ptr == arr.__array_interface__["data"][0] and not info.library_owned
    assert tracer.array(h) is arr
    tracer.mark_in_use(h)
    assert tracer.sanitize(h) == 100.0
    assert not arr.any()
    tracer.free(h)
    tracer.flush()
    rec = records_for(log_path, h)[0]
    assert rec["dtype"] == "float32" and rec["shape"] == [16, 64]


def test_track_refuses_unsafe_arrays(tracer: CacheTracer) -> None:
    np = need_numpy()
    base = np.ones((32, 32), dtype=np.float32)
    with pytest.raises(kvhygiene.InvalidArgumentError, match="contiguous"):
        tracer.track(base[:, ::2], tenant_id="t", request_id="r", model_id="m")
    ro = np.ones(16)
    ro.flags.writeable = False
    with pytest.raises(kvhygiene.InvalidArgumentError, match="read-only"):
        tracer.track(ro, tenant_id="t", request_id="r", model_id="m")
    with pytest.raises(kvhygiene.InvalidArgumentError):
        tracer.track([1, 2, 3], tenant_id="t", request_id="r", model_id="m")


def test_buffer_context_sanitizes_and_frees(tracer: CacheTracer) -> None:
    np = need_numpy()
    with tracer.buffer(tenant_id="t", request_id="r", model_id="m", shape=(256,), dtype="float32") as buf:
        buf.array[:] = 9.0
        tracer.mark_in_use(buf.handle)
        assert np.all(buf.array == 9.0)
        h = buf.handle
    with pytest.raises(kvhygiene.FreedHandleError):
        tracer.info(h)


def test_buffer_context_sanitizes_when_the_body_raises(tracer: CacheTracer) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with tracer.buffer(tenant_id="t", request_id="r", model_id="m", shape=(64,)) as buf:
            h = buf.handle
            raise RuntimeError("boom")
    with pytest.raises(kvhygiene.FreedHandleError):
        tracer.info(h)


def test_buffer_context_quarantines_and_raises_on_failure(tracer: CacheTracer) -> None:
    with pytest.raises(kvhygiene.HygieneViolationError):
        with tracer.buffer(tenant_id="t", request_id="r", model_id="m", shape=(64,)) as buf:
            h = buf.handle
            tracer.quarantine(h, reason="suspicious")
    assert tracer.info(h).state == "quarantined"


def test_other_tenant_is_an_isolation_violation(tracer: CacheTracer, log_path: Path) -> None:
    h = alloc(tracer, tenant_id="alice")
    tracer.bind(h, tenant_id="alice")
    with pytest.raises(kvhygiene.IsolationViolationError) as ei:
        tracer.mark_in_use(h, tenant_id="mallory")
    assert ei.value.status == 10
    assert tracer.info(h).state == "quarantined"
    tracer.flush()
    ev = [r["event_type"] for r in records_for(log_path, h)]
    assert "isolation_violation" in ev


def test_torch_tensor_tracking(tracer: CacheTracer) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    t = torch.ones((8, 32), dtype=torch.float16)
    h = tracer.track(t, tenant_id="t", request_id="r", model_id="m")
    assert tracer.info(h).nbytes == 8 * 32 * 2
    assert tracer.sanitize(h) == 100.0
    assert int(torch.count_nonzero(t)) == 0
    tracer.free(h)
    with pytest.raises(kvhygiene.InvalidArgumentError):
        tracer.track(torch.ones((8, 8)).t(), tenant_id="t", request_id="r", model_id="m")


def test_torch_cuda_tensor_tracking(tracer: CacheTracer) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    t = torch.ones((1024,), dtype=torch.float32, device="cuda:0")
    h = tracer.track(t, tenant_id="t", request_id="r", model_id="m")
    info = tracer.info(h)
    assert info.device == "cuda:0"
    assert tracer.sanitize(h) == 100.0
    assert int(torch.count_nonzero(t)) == 0
    tracer.free(h)


def test_consecutive_allocations_do_not_leak_fields(tracer: CacheTracer, log_path: Path) -> None:
    """The per-thread descriptor is reused; every field must follow each call."""
    np = need_numpy()
    cases = [
        dict(tenant_id="a", request_id="r1", model_id="m1", shape=(4, 4), dtype="float32"),
        dict(tenant_id="b", request_id="r2", model_id="m1", shape=[8], dtype="int8", framework="torch"),
        dict(tenant_id="a", request_id="r3", model_id="m2", shape=(np.int64(3), 2), dtype="float64",
             ttl_sec=100.0, max_reuse=-1),
        dict(tenant_id="c", request_id="r4", model_id="m2", shape=(), dtype="float16"),
    ]
    hs = [tracer.allocate(**kw) for kw in cases]
    sizes = [64, 8, 48, 2]
    for h, kw, size in zip(hs, cases, sizes):
        info = tracer.info(h)
        assert (info.tenant_id, info.request_id, info.model_id) == (kw["tenant_id"], kw["request_id"], kw["model_id"])
        assert info.nbytes == size
    assert tracer.info(hs[2]).max_reuse == -1
    assert tracer.info(hs[0]).max_reuse == 0
    tracer.flush()
    recs = {str(r.get("handle")): r for r in records_for_all(log_path, "allocate")}
    assert recs[hs[1]]["dtype"] == "int8" and recs[hs[1]]["shape"] == [8]
    assert recs[hs[0]]["shape"] == [4, 4]
    assert recs[hs[2]]["ttl_sec"] == 100.0
    assert recs[hs[0]].get("ttl_sec") is None
    # pointer, size and flags follow too: a tracked array between two
    # library-owned buffers, a pinned one before an unpinned one
    arr = np.ones(32, dtype=np.uint8)
    h1 = tracer.allocate(tenant_id="a", request_id="r5", model_id="m1", shape=(16,), dtype="uint8", pinned=True)
    h2 = tracer.track(arr, tenant_id="a", request_id="r6", model_id="m1")
    h3 = tracer.allocate(tenant_id="a", request_id="r7", model_id="m1", shape=(16,), dtype="uint8")
    i1, i2, i3 = tracer.info(h1), tracer.info(h2), tracer.info(h3)
    assert i1.library_owned and i3.library_owned and not i2.library_owned
    assert i2.ptr == arr.__array_interface__["data"][0] and i2.nbytes == 32
    assert i3.ptr not in (0, i1.ptr, i2.ptr) and i3.nbytes == 16
    tracer.flush()
    recs = {str(r.get("handle")): r for r in records_for_all(log_path, "allocate")}
    assert recs[h1]["pinned"] is True and recs[h3]["pinned"] is False


def records_for_all(path: Path, event: str):
    from conftest import read_records

    return [r for r in read_records(path) if r["event_type"] == event]


def test_sanitize_many(tracer: CacheTracer) -> None:
    np = need_numpy()
    hs = [tracer.allocate(tenant_id="t", request_id=f"r{i}", model_id="m", shape=(512,)) for i in range(5)]
    for h in hs:
        tracer.array(h)[:] = 1.0
    assert tracer.sanitize_many(hs) == [100.0] * 5
    for h in hs:
        assert not tracer.array(h).any()
        tracer.free(h)
    assert tracer.sanitize_many([]) == []


def test_metrics_server_on_loopback(tracer: CacheTracer) -> None:
    import urllib.request

    h = tracer.allocate(tenant_id="t", request_id="r", model_id="m", shape=(8,))
    addr = tracer.serve_metrics("127.0.0.1:0")
    assert addr.startswith("127.0.0.1:")
    with pytest.raises(kvhygiene.BusyError):
        tracer.serve_metrics("127.0.0.1:0")
    body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
    assert "kv_hygiene_allocations_total" in body
    tracer.stop_metrics()
    tracer.sanitize(h)
    tracer.free(h)


def test_cuda_allocate_uses_a_tracked_torch_tensor(tracer: CacheTracer) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    h = tracer.allocate(tenant_id="t", request_id="r", model_id="m", shape=(64, 64), dtype="bf16", device="cuda:0")
    info = tracer.info(h)
    assert info.device == "cuda:0" and info.nbytes == 64 * 64 * 2 and not info.library_owned
    tracer.mark_in_use(h)
    assert tracer.sanitize(h, async_=True) == 0.0
    assert tracer.wait(h) == 100.0
    tracer.free(h)


def test_cuda_allocate_without_torch_is_a_clear_error(tracer: CacheTracer) -> None:
    import sys

    if "torch" in sys.modules:
        pytest.skip("torch is installed")
    try:
        import torch  # noqa: F401

        pytest.skip("torch is installed")
    except ImportError:
        pass
    with pytest.raises(kvhygiene.UnsupportedError, match="torch"):
        tracer.allocate(tenant_id="t", request_id="r", model_id="m", shape=(4,), device="cuda:0")
