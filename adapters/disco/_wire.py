"""Decoding what DISCO clients send, with work and memory bounded by what is legitimate.

msgpack lets a few bytes stand for a costly object: an empty array is one byte and a
56-byte Python list, a negative fixint one byte and a 28-byte int. Decoded naively, one
16 MiB frame of empty arrays costs over a gigabyte. Nothing here decodes a client's
bytes that way:

* a message is a map of at most :data:`MAX_FIELDS` fields, read field by field; its small
  values decode under tight limits (:data:`MAX_CONTAINERS` arrays and maps in all, each of
  at most :data:`MAX_ITEMS` items), and a large field is located by ``skip`` (which builds
  nothing) and handed over as raw bytes;
* v2's ``Encoded`` (a msgpack array of byte values) is decoded by :func:`decode_byte_list`
  with numpy, a few bytes of memory per byte, and anything but byte values is refused;
* weights (``[{shape, data}]``) are read tensor by tensor against the model's shapes, so a
  client can make the bridge decode no more numbers than the model holds, and the numbers
  of a tensor decode only as a flat array of numbers.

Large frames are decoded in a worker thread (:func:`~._protocol.off_loop`), so that
the event loop keeps answering the other clients within DISCO's 10 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
import numpy as np

from lowcarb.adapters.disco._protocol import INVALID_PAYLOAD, ProtocolViolation

__all__ = [
    "MAX_CONTAINERS",
    "MAX_FIELDS",
    "MAX_ITEMS",
    "decode_byte_list",
    "decode_message",
    "decode_weight_blob",
]

T = TypeVar("T")

#: Most fields in one message.
MAX_FIELDS = 16
#: Most arrays and maps in a message's small fields, or in the structure of weights.
MAX_CONTAINERS = 64
#: Most items of an array or map inside a small field.
MAX_ITEMS = 64
#: Longest string accepted anywhere (bytes).
MAX_STRING = 4096
#: Most dimensions of a tensor.
MAX_DIMS = 8
#: Bytes of a byte list decoded per numpy pass (bounds the temporary arrays to ~20x).
_CHUNK = 256 * 1024


def _malformed(what: str, exc: BaseException) -> ProtocolViolation:
    return ProtocolViolation(f"malformed {what}: {type(exc).__name__} {exc}", INVALID_PAYLOAD)


class _Budget:
    """Counts the arrays and maps a decode builds, refusing past ``most``."""

    def __init__(self, what: str, most: int = MAX_CONTAINERS) -> None:
        self.what, self.most, self.built = what, most, 0

    def __call__(self, value: T) -> T:
        # msgpack calls the hooks as each container is completed, innermost first, so
        # the count stops a nest of many small containers before it grows.
        self.built += 1
        if self.built > self.most:
            raise ProtocolViolation(
                f"{self.what} holds more than {self.most} arrays and maps", INVALID_PAYLOAD
            )
        return value


def _unpacker(data: bytes | memoryview, what: str, budget: _Budget) -> Any:
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=False,
        max_buffer_size=max(len(data), 1),
        max_str_len=MAX_STRING,
        max_bin_len=len(data),
        max_ext_len=len(data),
        max_array_len=MAX_ITEMS,
        max_map_len=MAX_ITEMS,
        list_hook=budget,
        object_hook=budget,
    )
    unpacker.feed(data)
    return unpacker


def _step(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ProtocolViolation:
        raise
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise _malformed(what, exc) from None


_NOT_WEIGHTS = "weights must be a list of {shape, data}"


def _header(
    read: Callable[[], int], data: bytes | memoryview, at: int, what: str, wrong: str
) -> int:
    """Read the array or map header at ``data[at]``: ``wrong`` for another type."""
    try:
        return read()
    except ValueError as exc:
        if data[at] == 0xC1:  # the one byte msgpack never uses
            raise _malformed(what, exc) from None
        raise ProtocolViolation(wrong, INVALID_PAYLOAD) from None
    except Exception as exc:  # out of data, and whatever else msgpack raises
        raise _malformed(what, exc) from None


def decode_message(
    frame: bytes, *, raw: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, memoryview]]:
    """Decode one client frame: a map of small fields, and large ones left raw.

    Args:
        frame: The frame's bytes.
        raw: Fields located but not decoded (their msgpack bytes are returned).

    Returns:
        The decoded fields, and the raw fields' bytes.

    Raises:
        ProtocolViolation: For malformed msgpack, anything but a map of string keys, too
            many fields or containers, or bytes after the map.
    """
    budget = _Budget("a message")
    unpacker = _unpacker(frame, "msgpack", budget)
    count = _header(unpacker.read_map_header, frame, 0, "msgpack", "a message must be a map")
    if count > MAX_FIELDS:
        raise ProtocolViolation(f"a message has at most {MAX_FIELDS} fields", INVALID_PAYLOAD)
    fields: dict[str, Any] = {}
    spans: dict[str, memoryview] = {}
    view = memoryview(frame)
    for _ in range(count):
        key = _step("msgpack", unpacker.unpack)
        if not isinstance(key, str):
            raise ProtocolViolation("message fields are named by strings", INVALID_PAYLOAD)
        if key in raw:
            start = unpacker.tell()
            _step("msgpack", unpacker.skip)  # builds nothing, however large
            spans[key] = view[start : unpacker.tell()]
        else:
            fields[key] = _step("msgpack", unpacker.unpack)
    if unpacker.tell() != len(frame):
        raise ProtocolViolation("bytes after the message", INVALID_PAYLOAD)
    return fields, spans


def decode_byte_list(data: bytes | memoryview) -> bytes:
    """The bytes of a msgpack array of integers 0..255 (v2's ``Encoded``).

    msgpack-lite writes 0..127 as one byte and 128..255 as ``0xcc`` and the byte. Parsed
    here with numpy: every run of bytes >= 0x80 starts a token, and within it the bytes
    at even offsets must be ``0xcc`` markers (any other is another type: refused); the
    other bytes are the values.

    Raises:
        ProtocolViolation: For anything but an array of byte values.
    """
    view = np.frombuffer(data, dtype=np.uint8)
    if len(view) == 0:
        raise ProtocolViolation("weights must be a list of byte values", INVALID_PAYLOAD)
    first = int(view[0])
    if 0x90 <= first <= 0x9F:
        count, body = first & 0x0F, view[1:]
    elif first == 0xDC and len(view) >= 3:
        count, body = int.from_bytes(view[1:3].tobytes(), "big"), view[3:]
    elif first == 0xDD and len(view) >= 5:
        count, body = int.from_bytes(view[1:5].tobytes(), "big"), view[5:]
    else:
        raise ProtocolViolation("weights must be a list of byte values", INVALID_PAYLOAD)
    if not count <= len(body) <= 2 * count:
        raise ProtocolViolation("weights must be a list of byte values", INVALID_PAYLOAD)
    out = np.empty(count, dtype=np.uint8)
    filled = 0
    his_before = 0  # bytes >= 0x80 before the chunk
    at_last_low = 0  # that count at the last byte < 0x80 seen
    ends_with_marker = False
    for start in range(0, len(body), _CHUNK):
        part = body[start : start + _CHUNK]
        high = part >= 0x80
        his = np.cumsum(high, dtype=np.int64) + his_before
        last_low = np.maximum.accumulate(np.where(high, at_last_low, his))
        # A high byte's place in its run is his - last_low - 1: markers at even places.
        marker = high & (((his - last_low) & 1) == 1)
        if not (part[marker] == 0xCC).all():
            raise ProtocolViolation("weights must be a list of byte values", INVALID_PAYLOAD)
        values = part[~marker]
        if filled + len(values) > count:
            raise ProtocolViolation("weights must be a list of byte values", INVALID_PAYLOAD)
        out[filled : filled + len(values)] = values
        filled += len(values)
        his_before, at_last_low = int(his[-1]), int(last_low[-1])
        ends_with_marker = bool(marker[-1])
    if filled != count or ends_with_marker:
        raise ProtocolViolation("weights must be a list of byte values", INVALID_PAYLOAD)
    return out.tobytes()


def _numbers(data: memoryview, count: int, index: int) -> np.ndarray:
    """A flat msgpack array of ``count`` numbers (v2's ``data``) as float32."""
    calls = 0

    def one_array(items: list[Any]) -> list[Any]:
        nonlocal calls
        calls += 1  # innermost first: a nested array is met before the outer one ends
        if calls > 1 or len(items) != count:
            raise ProtocolViolation(
                f"tensor {index}: data must be a flat list of {count} numbers", INVALID_PAYLOAD
            )
        return items

    def refuse(_: Any, *more: Any) -> Any:
        raise ProtocolViolation(f"tensor {index}: data must be numbers", INVALID_PAYLOAD)

    try:
        items = msgpack.unpackb(
            data,
            list_hook=one_array,
            object_hook=refuse,
            ext_hook=refuse,
            max_array_len=count,
            max_map_len=0,
            max_str_len=0,
            max_bin_len=0,
            max_ext_len=0,
        )
        if calls != 1:
            raise ProtocolViolation(f"tensor {index}: data must be a list of numbers")
        return np.asarray(items, dtype=np.float64).astype(np.float32)
    except ProtocolViolation as exc:
        raise ProtocolViolation(exc.reason, INVALID_PAYLOAD) from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, msgpack.ExtraData | msgpack.FormatError | msgpack.StackError):
            raise _malformed("weights", exc) from None
        raise ProtocolViolation(f"tensor {index}: data must be numbers", INVALID_PAYLOAD) from None
    except Exception as exc:
        raise _malformed("weights", exc) from None


def _float32(value: Any, index: int, ext_code: int) -> np.ndarray:
    """The ``data`` of the develop generation: an extension of little-endian float32."""
    if not isinstance(value, msgpack.ExtType) or value.code != ext_code:
        raise ProtocolViolation(f"tensor {index}: data must be a Float32Array", INVALID_PAYLOAD)
    if len(value.data) % 4:
        raise ProtocolViolation(
            f"tensor {index}: float32 bytes not a multiple of 4", INVALID_PAYLOAD
        )
    return np.frombuffer(value.data, dtype="<f4").astype(np.float32)


def _shape(value: Any, index: int) -> list[int]:
    if (
        not isinstance(value, list)
        or len(value) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in value)
    ):
        raise ProtocolViolation(f"tensor {index}: bad shape", INVALID_PAYLOAD)
    return value


def decode_weight_blob(
    blob: bytes,
    expected: Sequence[tuple[int, ...]] | None,
    *,
    ext_code: int | None = None,
) -> list[np.ndarray]:
    """Weights from msgpack ``[{shape, data}, ...]``, read against the model's shapes.

    Args:
        blob: The encoded weights.
        expected: The model's tensor shapes; None accepts any (a bounded number of
            tensors, no more numbers than bytes).
        ext_code: The extension code of float32 ``data`` (develop); None reads ``data`` as
            a list of numbers (v2).

    Raises:
        ProtocolViolation: For a wrong structure, size, shape or a non-finite value.
    """
    budget = _Budget("weights")
    unpacker = _unpacker(blob, "weights", budget)
    view = memoryview(blob)
    count = _header(unpacker.read_array_header, blob, 0, "weights", _NOT_WEIGHTS)
    limit = len(expected) if expected is not None else MAX_CONTAINERS
    if count != limit and (expected is not None or count > limit):
        raise ProtocolViolation(
            f"weights hold {count} tensors, the model has {limit}", INVALID_PAYLOAD
        )
    out: list[np.ndarray] = []
    for i in range(count):
        fields = _header(unpacker.read_map_header, blob, unpacker.tell(), "weights", _NOT_WEIGHTS)
        if fields > 4:
            raise ProtocolViolation(f"tensor {i}: too many fields", INVALID_PAYLOAD)
        shape: list[int] | None = None
        data: Any = None
        for _ in range(fields):
            key = _step("weights", unpacker.unpack)
            if key == "shape":
                shape = _shape(_step("weights", unpacker.unpack), i)
            elif key == "data" and ext_code is None:
                start = unpacker.tell()
                _step("weights", unpacker.skip)
                data = view[start : unpacker.tell()]
            elif key == "data":
                data = _step("weights", unpacker.unpack)
            else:
                _step("weights", unpacker.skip)
        if shape is None or data is None:
            raise ProtocolViolation(_NOT_WEIGHTS, INVALID_PAYLOAD)
        size = math.prod(shape)
        if expected is not None and tuple(shape) != tuple(expected[i]):
            raise ProtocolViolation(
                f"tensor {i} has shape {shape}, the model's is {list(expected[i])}",
                INVALID_PAYLOAD,
            )
        if ext_code is None:
            if size > len(data):  # every number takes at least one byte
                raise ProtocolViolation(f"tensor {i}: too few values for shape {shape}")
            vector = _numbers(data, size, i) if size else np.zeros(0, np.float32)
        else:
            vector = _float32(data, i, ext_code)
        if vector.size != size:
            raise ProtocolViolation(
                f"tensor {i}: {vector.size} values for shape {shape}", INVALID_PAYLOAD
            )
        if not np.isfinite(vector).all():
            raise ProtocolViolation(f"tensor {i} holds NaN or infinity", INVALID_PAYLOAD)
        out.append(vector.reshape(shape))
    if unpacker.tell() != len(blob):
        raise ProtocolViolation("bytes after the weights", INVALID_PAYLOAD)
    return out
