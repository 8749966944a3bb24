"""Real-GPU tests without torch: memory from libcuda through ctypes, zeroized
through libkvhygiene's C ABI, read back with cuMemcpyDtoH."""
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _skip import skip  # noqa: E402
import kvh_ctypes as K  # noqa: E402


def _driver():
    try:
        return K.CudaDriver()
    except OSError as e:
        skip(f"no CUDA driver: {e}")
    except RuntimeError as e:
        skip(f"no usable GPU: {e}")


def test_ctypes_sanitize_and_pool():
    cu = _driver()
    tr = K.Tracer(K.Lib(), tempfile.mkdtemp(prefix="kvh-gpu-"))
    n = 8 << 20
    p = cu.alloc(n)
    try:
        rnd = random.Random(1)
        data = bytes(rnd.randrange(1, 256) for _ in range(1 << 16)) * (n >> 16)
        cu.upload(p, data)
        h = tr.allocate_cuda(p + 5, (4 << 20) + 3)
        assert tr.sanitize(h) == 100.0
        got = cu.download(p, n)
        assert got[:5] == data[:5]
        assert got[5:5 + (4 << 20) + 3] == bytes((4 << 20) + 3)
        assert got[5 + (4 << 20) + 3:] == data[5 + (4 << 20) + 3:]
        tr.free(h)

        # Paged pool: 2 regions x 32 blocks of 64 KiB in one allocation.
        cu.upload(p, data)
        bb = 64 << 10
        pool = tr.pool_register([(p, bb, bb), (p + 32 * bb, bb, bb)], 32)
        blocks = [1, 4, 5, 31]
        tr.pool_assign(pool, blocks)
        assert tr.pool_release(pool, blocks) == 100.0
        got = cu.download(p, n)
        for r in range(2):
            for b in range(32):
                off = r * 32 * bb + b * bb
                want = bytes(bb) if b in blocks else data[off:off + bb]
                assert got[off:off + bb] == want, (r, b)
        tr.pool_unregister(pool)

        # Bad ranges are refused.
        st, _ = tr.try_allocate_cuda(p, n + 1)
        assert st == K.KVH_E_INVALID_ARG
    finally:
        tr.close()
        cu.free(p)
