"""V2 datatypes and their numpy dtypes. BYTES tensors are numpy object arrays of `bytes`."""

from __future__ import annotations

import numpy as np

NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})

_BY_NUMPY = {dt: name for name, dt in NUMPY_DTYPES.items()}


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of an array (object and bytes/str arrays are BYTES)."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return _BY_NUMPY[array.dtype]
    except KeyError:
        raise TypeError(f"no V2 datatype for numpy dtype {array.dtype}") from None
