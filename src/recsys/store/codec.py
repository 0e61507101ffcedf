"""Compact binary values shared by the backends.

A feature vector is its raw little-endian float32 bytes, so 300 candidates decode with one
``np.frombuffer`` over the joined values. A recall list is packed as::

    b"RCL1" | uint32 n | float32 scores[n] | uint16 id_lengths[n] | utf-8 ids, concatenated

(scores first so that they stay 4-byte aligned). Both are several times smaller than JSON or
one hash field per feature, and decoding does not touch a Python float per feature.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import accumulate

import numpy as np

from recsys.errors import InvalidInput, StoreError

VECTOR_DTYPE = np.dtype("<f4")
MAX_ID_BYTES = 65535
_RECALL_HEAD = struct.Struct("<4sI")
_RECALL_MAGIC = b"RCL1"


def encode_rows(matrix: np.ndarray) -> list[bytes]:
    """One value per row of a C-contiguous ``<f4`` matrix (see ``base.prepare``)."""
    rows, dim = matrix.shape
    width = dim * VECTOR_DTYPE.itemsize
    if width == 0:
        return [b""] * rows
    # one tobytes and slicing beats a tobytes per row by an order of magnitude
    data = matrix.astype(VECTOR_DTYPE, copy=False).tobytes()
    return [data[start : start + width] for start in range(0, len(data), width)]


def decode_vector(blob: bytes, dim: int) -> np.ndarray:
    if len(blob) != dim * VECTOR_DTYPE.itemsize:
        raise StoreError(f"store: corrupt vector of {len(blob)} bytes, expected {dim} float32")
    return np.frombuffer(blob, VECTOR_DTYPE).copy()


def decode_rows(blobs: Sequence[bytes | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(len(blobs), dim)`` matrix with NaN rows where a blob is None, and the found mask."""
    n = len(blobs)
    present = [b for b in blobs if b is not None]
    joined = bytearray().join(present)  # bytearray so that the result is writable
    if len(joined) != len(present) * dim * VECTOR_DTYPE.itemsize:
        raise StoreError(f"store: corrupt vectors: {len(joined)} bytes for {len(present)} x {dim} float32")
    rows = np.frombuffer(joined, VECTOR_DTYPE).reshape(len(present), dim)
    if len(present) == n:
        return rows, np.ones(n, dtype=bool)
    found = np.fromiter((b is not None for b in blobs), dtype=bool, count=n)
    out = np.full((n, dim), np.nan, dtype=VECTOR_DTYPE)
    out[found] = rows
    return out, found


def encode_recall(items: Sequence[tuple[str, float]]) -> bytes:
    n = len(items)
    try:
        ids = [item.encode() for item, _ in items]
    except UnicodeEncodeError as e:
        raise InvalidInput(f"store: recall item id is not valid unicode: {e}") from e
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    if n and int(lengths.max()) > MAX_ID_BYTES:
        raise InvalidInput(f"store: a recall item id is longer than {MAX_ID_BYTES} bytes")
    scores = np.fromiter((score for _, score in items), dtype=VECTOR_DTYPE, count=n)
    return b"".join(
        [_RECALL_HEAD.pack(_RECALL_MAGIC, n), scores.tobytes(), lengths.astype("<u2").tobytes(), *ids]
    )


def decode_recall(blob: bytes) -> list[tuple[str, float]]:
    """The ordered (item, score) list; scores come back as float32 precision."""
    head = _RECALL_HEAD.size
    if len(blob) < head:
        raise StoreError(f"store: corrupt recall list of {len(blob)} bytes")
    magic, n = _RECALL_HEAD.unpack_from(blob)
    ids_at = head + 6 * n
    if magic != _RECALL_MAGIC or len(blob) < ids_at:
        raise StoreError("store: corrupt recall list (bad header)")
    scores = np.frombuffer(blob, VECTOR_DTYPE, n, head).tolist()
    lengths = np.frombuffer(blob, "<u2", n, head + 4 * n).tolist()
    ends = list(accumulate(lengths, initial=ids_at))
    if ends[-1] != len(blob):
        raise StoreError("store: corrupt recall list (id block length)")
    try:
        ids = [blob[a:b].decode() for a, b in zip(ends[:-1], ends[1:], strict=True)]
    except UnicodeDecodeError as e:
        raise StoreError(f"store: corrupt recall list (ids): {e}") from e
    return list(zip(ids, scores, strict=True))
