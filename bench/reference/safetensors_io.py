"""Minimal safetensors reader and writer (float32 only) for the Python references: Debian's
python3 here has no `safetensors` package. Arrays are numpy, little-endian float32."""
import json
import struct

import numpy as np


def read_safetensors(path):
    """Returns ({name: float32 array}, metadata dict)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for k, h in header.items():
        if h["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {k} is {h['dtype']}, only F32 is read here")
        b, e = h["data_offsets"]
        out[k] = np.frombuffer(buf[8 + n + b : 8 + n + e], dtype="<f4").copy().reshape(h["shape"])
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: array-like}; written as float32 in insertion order."""
    arrays = {k: np.ascontiguousarray(a, "<f4") for k, a in tensors.items()}
    header, off = {}, 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for k, a in arrays.items():
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(a.tobytes() for a in arrays.values()))
