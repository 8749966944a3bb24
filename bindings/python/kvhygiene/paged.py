"""Paged KV caches (vLLM-style block tables) as kvhygiene pools.

Register the engine's per-layer KV tensors once; then ``assign`` blocks to a
tenant/request when the scheduler hands them out and ``release`` them when
the request finishes: one library call zeroizes (and verifies) every region
of every listed block in every layer.

Layouts (``layout=``):

``"flash_attn"`` (vLLM FlashAttention / xFormers)
    per layer ``[2, num_blocks, block_size, num_kv_heads, head_size]``:
    two regions per layer, K base = ``data``, V base = ``data + stride[0]``
    (= ``num_blocks * block_bytes`` when contiguous), block stride = one block.
``"flashinfer"``
    per layer ``[num_blocks, 2, block_size, num_kv_heads, head_size]``:
    K base = ``data``, V base = ``data + block_bytes``, stride = ``2 * block_bytes``.
``"mla"``
    per layer ``[num_blocks, block_size, dim]`` (one latent region per layer).

Arrays may be NumPy (host memory) or torch tensors (CPU or CUDA); every
layer must have the same shape, dtype and device. The pool keeps references
to the arrays until :meth:`PagedKVCache.close`.
"""

from __future__ import annotations

import ctypes
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from . import _arrays
from . import _lib as L
from ._errors import KVH_E_CLOSED, KVH_E_INVALID_ARG, InvalidArgumentError, TracerClosedError
from .tracer import CacheTracer, _b

LAYOUTS = ("flash_attn", "flashinfer", "mla")
_VERIFY = {"default": L.KVH_VERIFY_DEFAULT, "none": L.KVH_VERIFY_NONE, "sampled": L.KVH_VERIFY_SAMPLED, "full": L.KVH_VERIFY_FULL}


def _bad(msg: str) -> InvalidArgumentError:
    return InvalidArgumentError(msg, status=KVH_E_INVALID_ARG)


def layer_regions(layer: Any, layout: str) -> Tuple[List[Tuple[int, int, int]], int, _arrays.Region]:
    """Regions ``(base, block_stride, block_bytes)`` of one layer, and its block count."""
    r = _arrays.describe(layer, require_contiguous=False)
    shp, st, isz = r.shape, r.strides, r.itemsize
    if layout == "flash_attn":
        if len(shp) < 2 or shp[0] != 2:
            raise _bad(f"flash_attn layout needs [2, num_blocks, ...], got shape {shp}")
        nb, inner = shp[1], 2
    elif layout == "flashinfer":
        if len(shp) < 2 or shp[1] != 2:
            raise _bad(f"flashinfer layout needs [num_blocks, 2, ...], got shape {shp}")
        nb, inner = shp[0], 2
    elif layout == "mla":
        if len(shp) < 1:
            raise _bad(f"mla layout needs [num_blocks, ...], got shape {shp}")
        nb, inner = shp[0], 1
    else:
        raise _bad(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    # The per-block payload (dims after the block/kv dims) must be contiguous.
    expect = isz
    for d, s in zip(reversed(shp[inner:]), reversed(st[inner:])):
        if d > 1 and s != expect:
            raise _bad(f"layer of shape {shp} with strides {st}: a block is not contiguous")
        expect *= d
    block_bytes = _arrays.prod(shp[inner:]) * isz
    if layout == "flash_attn":
        regions = [(r.ptr, st[1], block_bytes), (r.ptr + st[0], st[1], block_bytes)]
    elif layout == "flashinfer":
        regions = [(r.ptr, st[0], block_bytes), (r.ptr + st[1], st[0], block_bytes)]
    else:
        regions = [(r.ptr, st[0], block_bytes)]
    return regions, nb, r


class PagedKVCache:
    """A registered paged KV cache (kvh_pool_*). Use as a context manager or
    call :meth:`close` (unregisters; ``force=True`` zeroizes assigned blocks)."""

    def __init__(
        self,
        tracer: CacheTracer,
        kv_caches: Sequence[Any],
        *,
        model_id: str,
        layout: str = "flash_attn",
        name: Optional[str] = None,
        verify: str = "full",
        stream: Any = None,
    ) -> None:
        self._pool: Optional[int] = None
        if not kv_caches:
            raise _bad("kv_caches is empty")
        if layout not in LAYOUTS:
            raise _bad(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
        if verify not in _VERIFY:
            raise _bad(f"verify must be one of {sorted(_VERIFY)}, got {verify!r}")
        regions: List[Tuple[int, int, int]] = []
        first: Optional[_arrays.Region] = None
        num_blocks = -1
        for i, layer in enumerate(kv_caches):
            rs, nb, r = layer_regions(layer, layout)
            if first is None:
                first, num_blocks = r, nb
            elif (r.shape, r.dtype, r.device, r.ordinal) != (first.shape, first.dtype, first.device, first.ordinal):
                raise _bad(
                    f"layer {i} has shape {r.shape} {r.dtype} on device {r.device}:{r.ordinal}; "
                    f"layer 0 has {first.shape} {first.dtype} on {first.device}:{first.ordinal}"
                )
            regions.extend(rs)
        assert first is not None
        if not 0 < num_blocks < 1 << 32:
            raise _bad(f"num_blocks must be in 1..2^32-1, got {num_blocks}")
        self.tracer = tracer
        self.layout = layout
        self.num_layers = len(kv_caches)
        self.num_blocks = num_blocks
        self.block_bytes = regions[0][2]
        self.regions = regions
        self.device = "cpu" if first.device == L.KVH_DEVICE_CPU else f"cuda:{first.ordinal}"
        self._layers = list(kv_caches)  # keep the memory alive
        self._lib = tracer._lib
        arr = (L.kvh_pool_region * len(regions))(*[L.kvh_pool_region(b, s, n) for b, s, n in regions])
        d = L.kvh_pool_desc()
        d.device = first.device
        d.device_ordinal = first.ordinal
        d.num_blocks = num_blocks
        sv = _arrays.stream_value(stream)
        d.stream = sv if sv is not None else first.stream
        d.regions = arr
        d.num_regions = len(regions)
        d.model_id = _b(model_id, "model_id")
        d.name = _b(name, "name")
        d.verify = _VERIFY[verify]
        out = ctypes.c_uint64()
        self._lib.kvh_pool_register(tracer._tp(), ctypes.byref(d), ctypes.byref(out))
        self._pool = out.value

    @property
    def handle(self) -> int:
        if self._pool is None:
            raise TracerClosedError("pool is unregistered", status=KVH_E_CLOSED)
        return self._pool

    def _blocks(self, block_ids: Iterable[int]) -> Tuple[Any, int, Any]:
        np = _arrays.numpy_or_none()
        if np is not None:
            a = np.ascontiguousarray(np.asarray(block_ids, dtype=np.int64).reshape(-1))
            if a.size and (a.min() < 0 or a.max() >= 1 << 32):
                raise _bad("block ids must be in 0..2^32-1")
            a = a.astype(np.uint32)
            return a.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), int(a.size), a
        ids = [int(b) for b in block_ids]
        if any(b < 0 or b >= 1 << 32 for b in ids):
            raise _bad("block ids must be in 0..2^32-1")
        c = (ctypes.c_uint32 * len(ids))(*ids)
        return c, len(ids), c

    def assign(self, block_ids: Iterable[int], tenant_id: str, request_id: str) -> None:
        """Hand blocks to tenant/request. A block last owned by another tenant
        and not released (sanitized) since raises IsolationViolationError
        (the block is quarantined). All-or-nothing."""
        p, n, keep = self._blocks(block_ids)
        self._lib.kvh_pool_assign(
            self.tracer._tp(), self.handle, p, n, _b(tenant_id, "tenant_id"), _b(request_id, "request_id")
        )
        del keep

    def release(self, block_ids: Iterable[int], *, async_: bool = False) -> float:
        """Zeroize + verify every region of the blocks in one pass; returns
        coverage percent. ``async_`` (device pools) returns after enqueueing;
        :meth:`sync` completes."""
        p, n, keep = self._blocks(block_ids)
        cov = ctypes.c_double()
        self._lib.kvh_pool_release(
            self.tracer._tp(), self.handle, p, n, L.KVH_RELEASE_ASYNC if async_ else 0, ctypes.byref(cov)
        )
        del keep
        return cov.value

    def release_quarantine(self, block_ids: Iterable[int], reason: str) -> float:
        """Return quarantined blocks to service: every region of every block is
        zeroized and every byte verified; the blocks that read back zero become
        free and a ``release_quarantine`` record names them with ``reason``.
        Raises :class:`VerificationError` if some did not (they stay
        quarantined) and :class:`StateError` if a block is not quarantined."""
        p, n, keep = self._blocks(block_ids)
        cov = ctypes.c_double()
        self._lib.kvh_pool_release_quarantine(
            self.tracer._tp(), self.handle, p, n, _b(reason, "reason"), ctypes.byref(cov)
        )
        del keep
        return cov.value

    def sync(self) -> float:
        """Complete async releases; lowest coverage among them (100 if none)."""
        cov = ctypes.c_double()
        self._lib.kvh_pool_sync(self.tracer._tp(), self.handle, ctypes.byref(cov))
        return cov.value

    def close(self, *, force: bool = False) -> None:
        """Unregister. Assigned blocks are an error (StateError) unless force."""
        if self._pool is None:
            return
        self._lib.kvh_pool_unregister(self.tracer._tp(), self._pool, 1 if force else 0)
        self._pool = None
        self._layers = []

    def __enter__(self) -> "PagedKVCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None and not self.tracer.closed:
            self.close(force=exc[0] is not None)


def register(tracer: CacheTracer, kv_caches: Sequence[Any], **kw: Any) -> PagedKVCache:
    """Shorthand for :class:`PagedKVCache` (tracer, kv_caches, model_id=..., layout=...)."""
    return PagedKVCache(tracer, kv_caches, **kw)
