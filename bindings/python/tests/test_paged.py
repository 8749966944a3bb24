"""Paged KV caches (vLLM layouts) through kvhygiene.paged, on real NumPy memory."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List

import pytest

import kvhygiene
from kvhygiene import CacheTracer
from kvhygiene.paged import PagedKVCache

from conftest import need_numpy, read_records

NUM_LAYERS = 3
NUM_BLOCKS = 48
BLOCK_SIZE = 8
HEADS = 2
HEAD = 16


def _cache(np, layout: str) -> List:
    if layout == "flash_attn":
        shape = (2, NUM_BLOCKS, BLOCK_SIZE, HEADS, HEAD)
    else:
        shape = (NUM_BLOCKS, 2, BLOCK_SIZE, HEADS, HEAD)
    return [np.zeros(shape, dtype=np.float16) for _ in range(NUM_LAYERS)]


def _block_views(layer, layout: str, b: int):
    """(K, V) views of block b of one layer."""
    if layout == "flash_attn":
        return layer[0, b], layer[1, b]
    return layer[b, 0], layer[b, 1]


def _fill(np, caches, layout: str, blocks, value: float) -> None:
    for layer in caches:
        for b in blocks:
            for v in _block_views(layer, layout, b):
                v[...] = value


def _is_zero(caches, layout: str, b: int) -> bool:
    return all(not v.any() for layer in caches for v in _block_views(layer, layout, b))


def _has(caches, layout: str, b: int, value: float) -> bool:
    return all((v == value).all() for layer in caches for v in _block_views(layer, layout, b))


def test_regions_follow_the_layouts(tracer: CacheTracer) -> None:
    np = need_numpy()
    block_bytes = BLOCK_SIZE * HEADS * HEAD * 2
    fa = _cache(np, "flash_attn")
    with PagedKVCache(tracer, fa, model_id="m", layout="flash_attn") as pool:
        assert pool.block_bytes == block_bytes and pool.num_blocks == NUM_BLOCKS
        assert len(pool.regions) == 2 * NUM_LAYERS
        (kb, ks, kn), (vb, vs, vn) = pool.regions[:2]
        assert kb == fa[0].__array_interface__["data"][0]
        assert vb - kb == NUM_BLOCKS * block_bytes and ks == vs == block_bytes
    fi = _cache(np, "flashinfer")
    with PagedKVCache(tracer, fi, model_id="m", layout="flashinfer") as pool:
        (kb, ks, kn), (vb, vs, vn) = pool.regions[:2]
        assert vb - kb == block_bytes and ks == vs == 2 * block_bytes and kn == block_bytes


def test_bad_layouts_are_refused(tracer: CacheTracer) -> None:
    np = need_numpy()
    with pytest.raises(kvhygiene.InvalidArgumentError):
        PagedKVCache(tracer, [np.zeros((3, 4, 8))], model_id="m", layout="flash_attn")
    with pytest.raises(kvhygiene.InvalidArgumentError):
        PagedKVCache(tracer, [np.zeros((2, 4, 8)), np.zeros((2, 5, 8))], model_id="m")
    with pytest.raises(kvhygiene.InvalidArgumentError):
        PagedKVCache(tracer, [np.zeros((2, 4, 8))], model_id="m", layout="paged-nonsense")
    with pytest.raises(kvhygiene.InvalidArgumentError):
        PagedKVCache(tracer, [], model_id="m")


@pytest.mark.parametrize("layout", ["flash_attn", "flashinfer"])
def test_tenant_churn_never_leaks(tracer: CacheTracer, log_path: Path, layout: str) -> None:
    np = need_numpy()
    rng = random.Random(7)
    caches = _cache(np, layout)
    tenants = ["alice", "bob", "carol", "dave"]
    value = {t: float(i + 1) for i, t in enumerate(tenants)}
    with PagedKVCache(tracer, caches, model_id="llama", layout=layout, name="test") as pool:
        free = list(range(NUM_BLOCKS))
        live: Dict[str, tuple] = {}  # request -> (tenant, blocks)
        releases = 0
        for step in range(80):
            if free and (not live or rng.random() < 0.6):
                tenant = rng.choice(tenants)
                k = min(len(free), rng.randint(1, 6))
                blocks = rng.sample(free, k)
                for b in blocks:
                    assert _is_zero(caches, layout, b), f"block {b} handed out dirty"
                    free.remove(b)
                req = f"req-{step}"
                pool.assign(blocks, tenant, req)
                _fill(np, caches, layout, blocks, value[tenant])
                live[req] = (tenant, blocks)
            else:
                req = rng.choice(sorted(live))
                tenant, blocks = live.pop(req)
                assert pool.release(blocks) == 100.0
                releases += 1
                for b in blocks:
                    assert _is_zero(caches, layout, b), f"block {b} not zero in every layer after release"
                free.extend(blocks)
                # neighbours still owned by others were not touched
                for t2, bl2 in live.values():
                    for b in bl2:
                        assert _has(caches, layout, b, value[t2]), f"release touched live block {b}"
        assert releases > 10
        for tenant, blocks in live.values():
            pool.release(blocks)
    tracer.flush()
    recs = read_records(log_path)
    assert sum(r["event_type"] == "pool_release" for r in recs) >= releases
    assert not any(r["event_type"] == "isolation_violation" for r in recs)


def test_skipped_sanitize_is_an_isolation_violation(tracer: CacheTracer, log_path: Path) -> None:
    np = need_numpy()
    caches = _cache(np, "flash_attn")
    with PagedKVCache(tracer, caches, model_id="m") as pool:
        pool.assign([3, 4], "alice", "r1")
        _fill(np, caches, "flash_attn", [3, 4], 5.0)
        # The engine "forgets" to release block 4 and hands it to bob.
        with pytest.raises(kvhygiene.IsolationViolationError) as ei:
            pool.assign([4, 5], "bob", "r2")
        assert ei.value.status == 10
        # all-or-nothing: block 5 was not assigned to bob, so carol may take it
        pool.assign([5], "carol", "r3")
        pool.release([5])
        pool.release([3])
        pool.close(force=True)
    tracer.flush()
    recs = read_records(log_path)
    assert any(r["event_type"] == "isolation_violation" for r in recs)


def test_quarantined_block_returns_through_a_verified_scrub(tracer: CacheTracer, log_path: Path) -> None:
    np = need_numpy()
    caches = _cache(np, "flash_attn")
    with PagedKVCache(tracer, caches, model_id="m") as pool:
        pool.assign([7], "alice", "r1")
        _fill(np, caches, "flash_attn", [7], 3.0)
        with pytest.raises(kvhygiene.IsolationViolationError):
            pool.assign([7], "bob", "r2")  # block 7 quarantined, still holding alice's data
        with pytest.raises(kvhygiene.QuarantinedError):
            pool.assign([7], "bob", "r2")
        with pytest.raises(kvhygiene.StateError):
            pool.release_quarantine([7, 8], "reviewed")  # 8 is not quarantined: nothing done
        assert all(_block_views(layer, "flash_attn", 7)[0].any() for layer in caches)
        assert pool.release_quarantine([7], "reviewed by oncall") == 100.0
        for layer in caches:
            k, v = _block_views(layer, "flash_attn", 7)
            assert not k.any() and not v.any()
        pool.assign([7], "bob", "r2")
        pool.release([7])
    tracer.flush()
    recs = [r for r in read_records(log_path) if r["event_type"] == "release_quarantine"]
    assert len(recs) == 1 and recs[0]["blocks"] == [7] and recs[0]["reason"] == "reviewed by oncall"


def test_release_of_many_blocks_in_one_call(tracer: CacheTracer) -> None:
    np = need_numpy()
    caches = [np.ones((2, 256, 4, 2, 8), dtype=np.float32) for _ in range(2)]
    with PagedKVCache(tracer, caches, model_id="m") as pool:
        ids = np.arange(256, dtype=np.uint32)
        pool.assign(ids, "t", "r")
        assert pool.release(ids) == 100.0
    assert not any(c.any() for c in caches)


def test_unregister_with_assigned_blocks(tracer: CacheTracer) -> None:
    np = need_numpy()
    caches = [np.ones((2, 8, 4, 2, 8), dtype=np.float32)]
    pool = PagedKVCache(tracer, caches, model_id="m")
    pool.assign([1], "t", "r")
    with pytest.raises(kvhygiene.StateError):
        pool.close()
    pool.close(force=True)
    assert not caches[0][:, 1].any()
