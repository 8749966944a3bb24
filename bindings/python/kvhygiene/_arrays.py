"""Helpers to describe NumPy arrays and torch tensors as raw memory regions.

Neither NumPy nor torch is required: both are imported lazily and only when
an object of that kind is passed in.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from ._errors import KVH_E_INVALID_ARG, KVH_E_UNSUPPORTED, InvalidArgumentError, UnsupportedError
from ._lib import KVH_DEVICE_CPU, KVH_DEVICE_CUDA

# Used when NumPy is absent (and for names NumPy lacks, such as bfloat16).
_ITEMSIZE: Dict[str, int] = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "bf16": 2,
    "float64": 8,
    "double": 8,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "bool": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}

_dtype_cache: Dict[Any, Tuple[str, int]] = {}
_np_names: Dict[Any, str] = {}  # numpy dtype -> str(dtype) (numpy's __str__ is slow)


_NUMPY: Any = False  # False = not looked up yet


def numpy_or_none() -> Any:
    """The numpy module, or None when it is not installed (looked up once)."""
    global _NUMPY
    if _NUMPY is False:
        try:
            import numpy

            _NUMPY = numpy
        except ImportError:  # pragma: no cover - exercised only without numpy
            _NUMPY = None
    return _NUMPY


def _torch_if_loaded() -> Any:
    # Never import torch ourselves (it is slow); if the caller passed a tensor,
    # torch is already in sys.modules.
    return sys.modules.get("torch")


def dtype_info(dtype: Any) -> Tuple[str, int]:
    """(name, itemsize) of a dtype given as str, numpy dtype/type or torch dtype."""
    try:
        return _dtype_cache[dtype]
    except (KeyError, TypeError):
        pass
    name: Optional[str] = None
    size: Optional[int] = None
    torch = _torch_if_loaded()
    if torch is not None and isinstance(dtype, torch.dtype):
        name = str(dtype).replace("torch.", "")
        size = torch.empty((), dtype=dtype).element_size()
    elif isinstance(dtype, str) and dtype.lower() in _ITEMSIZE:
        name = dtype.lower()
        size = _ITEMSIZE[name]
    else:
        np = numpy_or_none()
        if np is not None:
            try:
                nd = np.dtype(dtype)
                name, size = str(nd), int(nd.itemsize)
            except TypeError as e:
                raise InvalidArgumentError(
                    f"unknown dtype {dtype!r}: {e}", status=KVH_E_INVALID_ARG
                ) from None
        else:
            raise InvalidArgumentError(
                f"unknown dtype {dtype!r} (NumPy is not installed; known names: "
                f"{', '.join(sorted(_ITEMSIZE))})",
                status=KVH_E_INVALID_ARG,
            )
    assert name is not None and size is not None
    try:
        _dtype_cache[dtype] = (name, size)
    except TypeError:
        pass
    return name, size


def shape_tuple(shape: Any) -> Tuple[int, ...]:
    """Normalise a shape (int or sequence of ints) and check it."""
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple(operator.index(d) for d in shape)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"shape must be a sequence of ints, got {shape!r}", status=KVH_E_INVALID_ARG
        ) from None
    for d in dims:
        if d < 0:
            raise InvalidArgumentError(
                f"shape {dims} has a negative dimension", status=KVH_E_INVALID_ARG
            )
    return dims


def prod(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def parse_device(device: Any) -> Tuple[int, int]:
    """(kvh_device, ordinal) from "cpu", "cuda", "cuda:N" or a torch.device."""
    s = str(device).strip().lower() if device is not None else "cpu"
    if s == "cpu":
        return KVH_DEVICE_CPU, 0
    if s == "cuda":
        return KVH_DEVICE_CUDA, 0
    if s.startswith("cuda:"):
        try:
            ordinal = int(s[5:])
        except ValueError:
            ordinal = -1
        if ordinal >= 0:
            return KVH_DEVICE_CUDA, ordinal
    raise InvalidArgumentError(
        f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}", status=KVH_E_INVALID_ARG
    )


def stream_value(stream: Any) -> Optional[int]:
    """A CUstream as integer from None, an int, or a torch.cuda.Stream."""
    if stream is None:
        return None
    if isinstance(stream, int):
        return stream
    cs = getattr(stream, "cuda_stream", None)
    if isinstance(cs, int):
        return cs
    raise InvalidArgumentError(
        f"stream must be an int (CUstream) or have .cuda_stream, got {type(stream).__name__}",
        status=KVH_E_INVALID_ARG,
    )


@dataclass
class Region:
    """A contiguous memory region backing an array or tensor."""

    ptr: int
    nbytes: int
    device: int
    ordinal: int
    stream: int
    dtype: str
    shape: Tuple[int, ...]
    framework: str
    strides: Tuple[int, ...]  # in bytes
    itemsize: int


def is_torch_tensor(obj: Any) -> bool:
    torch = _torch_if_loaded()
    return torch is not None and isinstance(obj, torch.Tensor)


def describe(obj: Any, *, require_contiguous: bool = True) -> Region:
    """Describe a NumPy array or torch tensor; refuse what the library cannot
    safely zeroize (non-contiguous, read-only)."""
    if is_torch_tensor(obj):
        torch = _torch_if_loaded()
        if require_contiguous and not obj.is_contiguous():
            raise InvalidArgumentError(
                "tensor must be contiguous (call .contiguous() and track the result)",
                status=KVH_E_INVALID_ARG,
            )
        es = int(obj.element_size())
        dev = obj.device
        if dev.type == "cuda":
            device, ordinal = KVH_DEVICE_CUDA, int(dev.index or 0)
            stream = int(torch.cuda.current_stream(dev).cuda_stream)
        elif dev.type == "cpu":
            device, ordinal, stream = KVH_DEVICE_CPU, 0, 0
        else:
            raise UnsupportedError(
                f"tensors on device {dev} are not supported (cpu and cuda only)",
                status=KVH_E_UNSUPPORTED,
            )
        return Region(
            ptr=int(obj.data_ptr()),
            nbytes=int(obj.numel()) * es,
            device=device,
            ordinal=ordinal,
            stream=stream,
            dtype=str(obj.dtype).replace("torch.", ""),
            shape=tuple(int(d) for d in obj.shape),
            framework="torch",
            strides=tuple(int(s) * es for s in obj.stride()),
            itemsize=es,
        )
    np = numpy_or_none()
    if np is not None and isinstance(obj, np.ndarray):
        if require_contiguous and not obj.flags.c_contiguous:
            raise InvalidArgumentError(
                "array must be C-contiguous (use numpy.ascontiguousarray and track the result)",
                status=KVH_E_INVALID_ARG,
            )
        if not obj.flags.writeable:
            raise InvalidArgumentError(
                "array is read-only; the library must be able to write zeros into it",
                status=KVH_E_INVALID_ARG,
            )
        dt = obj.dtype
        name = _np_names.get(dt)
        if name is None:
            name = _np_names[dt] = str(dt)
        return Region(
            ptr=obj.__array_interface__["data"][0],
            nbytes=obj.nbytes,
            device=KVH_DEVICE_CPU,
            ordinal=0,
            stream=0,
            dtype=name,
            shape=obj.shape,
            framework="numpy",
            strides=obj.strides,
            itemsize=obj.itemsize,
        )
    missing = []
    if np is None:
        missing.append("numpy")
    if _torch_if_loaded() is None:
        missing.append("torch")
    raise InvalidArgumentError(
        f"expected a numpy.ndarray or torch.Tensor, got {type(obj).__name__}"
        + (f" (not installed: {', '.join(missing)})" if missing else ""),
        status=KVH_E_INVALID_ARG,
    )
