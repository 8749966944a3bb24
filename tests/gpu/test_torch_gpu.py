"""Real-GPU tests through libkvhygiene's C ABI with PyTorch CUDA tensors.

Skip cleanly when torch or a GPU is missing. Every zeroized byte is checked by
torch; memory that must not be touched is compared with a copy.
"""
import ctypes
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _skip import skip  # noqa: E402
import kvh_ctypes as K  # noqa: E402


def _torch():
    try:
        import torch
    except ImportError:
        skip("torch is not installed")
    if not torch.cuda.is_available():
        skip("no CUDA GPU")
    return torch


def _tracer():
    lib = K.Lib()
    return K.Tracer(lib, tempfile.mkdtemp(prefix="kvh-gpu-"))


def _rand_u8(torch, n):
    return torch.randint(1, 256, (n,), dtype=torch.uint8, device="cuda")


def test_sanitize_sync_current_stream():
    torch = _torch()
    tr = _tracer()
    try:
        x = _rand_u8(torch, 64 << 20)
        guard = _rand_u8(torch, 1 << 20)
        before = guard.clone()
        stream = torch.cuda.current_stream().cuda_stream
        h = tr.allocate_cuda(x.data_ptr(), x.numel(), stream=stream)
        assert tr.sanitize(h) == 100.0
        torch.cuda.synchronize()
        assert int(torch.count_nonzero(x)) == 0
        assert torch.equal(guard, before)
        tr.free(h)
    finally:
        tr.close()


def test_sanitize_unaligned_subrange():
    torch = _torch()
    tr = _tracer()
    try:
        x = _rand_u8(torch, 1 << 20)
        ref = x.clone()
        off, n = 3, 100_001
        h = tr.allocate_cuda(x.data_ptr() + off, n, stream=torch.cuda.current_stream().cuda_stream)
        assert tr.sanitize(h) == 100.0
        torch.cuda.synchronize()
        assert int(torch.count_nonzero(x[off:off + n])) == 0
        assert torch.equal(x[:off], ref[:off])
        assert torch.equal(x[off + n:], ref[off + n:])
        tr.free(h)
    finally:
        tr.close()


def test_async_sanitize_then_wait():
    torch = _torch()
    tr = _tracer()
    try:
        x = _rand_u8(torch, 256 << 20)
        h = tr.allocate_cuda(x.data_ptr(), x.numel(), stream=torch.cuda.current_stream().cuda_stream)
        assert tr.sanitize(h, asynchronous=True) == 0.0
        assert tr.wait(h) == 100.0
        assert int(torch.count_nonzero(x)) == 0
        tr.free(h)
    finally:
        tr.close()


def test_vllm_paged_pool_release():
    torch = _torch()
    tr = _tracer()
    try:
        layers, num_blocks, block_size, heads, dim = 4, 64, 16, 8, 64
        caches = [torch.randn(2, num_blocks, block_size, heads, dim, dtype=torch.float16, device="cuda")
                  for _ in range(layers)]
        caches = [c.masked_fill(c == 0, 1.0) for c in caches]  # no accidental zeros
        refs = [c.clone() for c in caches]
        block_bytes = block_size * heads * dim * 2
        regions = []
        for c in caches:
            regions.append((c[0].data_ptr(), block_bytes, block_bytes))  # K
            regions.append((c[1].data_ptr(), block_bytes, block_bytes))  # V
        stream = torch.cuda.current_stream().cuda_stream
        pool = tr.pool_register(regions, num_blocks, stream=stream)
        blocks = [3, 5, 6, 7, 20, 63]
        tr.pool_assign(pool, blocks)
        assert tr.pool_release(pool, blocks) == 100.0
        torch.cuda.synchronize()
        released = torch.zeros(num_blocks, dtype=torch.bool, device="cuda")
        released[blocks] = True
        for c, ref in zip(caches, refs):
            assert int(torch.count_nonzero(c[:, released])) == 0
            assert torch.equal(c[:, ~released], ref[:, ~released])
        # Async release then sync.
        blocks2 = [0, 1, 2, 40]
        tr.pool_assign(pool, blocks2, tenant=b"tenant-b", request=b"req-2")
        tr.pool_release(pool, blocks2, asynchronous=True)
        assert tr.pool_sync(pool) == 100.0
        for c in caches:
            assert int(torch.count_nonzero(c[:, blocks2])) == 0
        tr.pool_unregister(pool)
    finally:
        tr.close()


def test_pending_work_on_stream_is_respected():
    torch = _torch()
    tr = _tracer()
    try:
        s = torch.cuda.Stream()
        x = torch.zeros(32 << 20, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        with torch.cuda.stream(s):
            torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU spinning on stream s
            x.fill_(7)                      # the engine's pending write
        h = tr.allocate_cuda(x.data_ptr(), x.numel(), stream=s.cuda_stream)
        assert tr.sanitize(h, asynchronous=True) == 0.0
        assert tr.wait(h) == 100.0
        s.synchronize()
        assert int(torch.count_nonzero(x)) == 0, "sanitize ran before the stream's pending fill"
        tr.free(h)
    finally:
        tr.close()


def test_bad_pointers_refused_context_survives():
    torch = _torch()
    tr = _tracer()
    try:
        x = _rand_u8(torch, 1 << 20)
        host = ctypes.create_string_buffer(4096)
        # torch's caching allocator carves tensors out of larger segments, so
        # "past the end" is checked against a cuMemAlloc allocation of our own.
        cu = K.CudaDriver()
        own = cu.alloc(1 << 20)
        cases = [
            (ctypes.addressof(host), 4096),         # host memory
            (own, (1 << 20) + 1),                   # one byte past the allocation
            (own + (1 << 20) - 8, 16),              # straddles the end
            (0x1000, 64),                           # nothing
        ]
        for ptr, n in cases:
            st, msg = tr.try_allocate_cuda(ptr, n)
            assert st == K.KVH_E_INVALID_ARG, (hex(ptr), n, st, msg)
        if torch.cuda.device_count() > 1:
            st, msg = tr.try_allocate_cuda(x.data_ptr(), 16, ordinal=1)
            assert st == K.KVH_E_INVALID_ARG, msg
        # torch and the library still work.
        assert float((torch.ones(10, device="cuda") * 2).sum()) == 20.0
        h = tr.allocate_cuda(x.data_ptr(), x.numel(), stream=torch.cuda.current_stream().cuda_stream)
        assert tr.sanitize(h) == 100.0
        assert int(torch.count_nonzero(x)) == 0
        tr.free(h)
        cu.free(own)
    finally:
        tr.close()


def test_graph_capture_refused():
    torch = _torch()
    tr = _tracer()
    try:
        x = _rand_u8(torch, 1 << 20)
        s = torch.cuda.Stream()
        h = tr.allocate_cuda(x.data_ptr(), x.numel(), stream=s.cuda_stream)
        g = torch.cuda.CUDAGraph()
        results = []
        with torch.cuda.graph(g, stream=s):
            y = x * 1
            results.append(tr.try_sanitize(h, stream=s.cuda_stream))
        st, msg = results[0]
        assert st != K.KVH_OK
        assert "captur" in msg.lower(), msg
        g.replay()
        torch.cuda.synchronize()
        assert int(torch.count_nonzero(y)) == y.numel()
        assert tr.sanitize(h, stream=s.cuda_stream) == 100.0
    finally:
        tr.close()
