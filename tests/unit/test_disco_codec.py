"""Codecs, model artifacts and task folders of the DISCO bridge (no network, no Node)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgpack
import numpy as np
import pytest
from _disco_harness import EXAMPLES, TASK, make_tasks
from hypothesis import given
from hypothesis import strategies as st

from lowcarb.adapters.disco import ProtocolViolation, load_task, load_tasks
from lowcarb.adapters.disco._develop import Develop
from lowcarb.adapters.disco._v2 import V2, js_numbers
from lowcarb.exceptions import DataValidationError

floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(st.lists(floats32, min_size=1, max_size=40))
def test_both_codecs_round_trip_float32_exactly(values: list[float]) -> None:
    array = np.array(values, dtype=np.float32)
    for codec in (V2(), Develop()):
        (back,) = codec.decode_weights(codec.encode_weights([array]), [array.shape])
        # v2 writes JS numbers: -0 becomes 0, as DISCO's own encoder does.
        expected = np.where(array == 0, np.float32(0), array) if isinstance(codec, V2) else array
        assert back.tobytes() == expected.tobytes()


def test_js_numbers_follow_msgpack_lite() -> None:
    out = js_numbers(
        np.array([0.0, -0.0, 1.0, -2.0, 0.5, 3e9, -(2.0**31), 2.0**31], dtype=np.float64)
    )
    assert out == [0, 0, 1, -2, 0.5, 3e9, -(2**31), 2.0**31]
    assert [type(v) for v in out] == [int, int, int, int, float, float, int, float]


@pytest.mark.parametrize(
    ("codec", "encoded", "message"),
    [
        (V2(), "nope", "byte values"),
        (V2(), list(msgpack.packb({"shape": [1]})), "list of {shape, data}"),
        (V2(), list(msgpack.packb([{"shape": [2], "data": [1.0]}])), "flat list of 2 numbers"),
        (V2(), list(msgpack.packb([{"shape": [2], "data": [[], []]}])), "flat list of 2 numbers"),
        (V2(), list(msgpack.packb([{"shape": [2], "data": [{}, 1]}])), "must be numbers"),
        (V2(), list(msgpack.packb([{"shape": [2], "data": [1, None]}])), "NaN"),
        (V2(), list(msgpack.packb([{"shape": [1], "data": [1]}]) + b"\x00"), "bytes after"),
        (V2(), list(msgpack.packb([{"shape": [1] * 9, "data": [1]}])), "bad shape"),
        (V2(), list(msgpack.packb([{"shape": [1], "data": [1]}] * 65)), "65 tensors"),
        (V2(), list(b"\x91" * 100 + b"\xc0"), "list of \\{shape, data\\}|malformed"),
        (Develop(), msgpack.packb([[[[]]]] * 3), "list of \\{shape, data\\}"),
        (V2(), list(msgpack.packb([{"shape": [1], "data": ["a"]}])), "must be numbers"),
        (V2(), list(msgpack.packb([{"shape": [-1], "data": []}])), "bad shape"),
        (Develop(), b"\xc1", "malformed weights"),
        (Develop(), msgpack.packb([{"shape": [1], "data": [1.0]}]), "Float32Array"),
        (
            Develop(),
            msgpack.packb([{"shape": [1], "data": msgpack.ExtType(0x17, b"abc")}]),
            "multiple of 4",
        ),
    ],
)
def test_bad_weights_are_rejected_with_a_reason(
    codec: object, encoded: object, message: str
) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        codec.decode_weights(encoded)  # type: ignore[attr-defined]


def test_artifacts_swap_model_weights_and_keep_the_optimizer_tail() -> None:
    task = load_task(EXAMPLES / "tasks-develop" / TASK)
    artifacts = task.artifacts
    tail = artifacts.data[sum(s.nbytes for s in artifacts.model_specs) :]
    assert tail  # adam's iteration counter
    replaced = artifacts.with_weights([np.full(s, 2.5, dtype=np.float32) for s in artifacts.shapes])
    assert replaced.data.endswith(tail)
    assert all((w == np.float32(2.5)).all() for w in replaced.weights())
    with pytest.raises(DataValidationError, match="shape"):
        artifacts.with_weights([np.zeros((3, 3), dtype=np.float32), *replaced.weights()[1:]])
    body, media = Develop().model_body(replaced)
    kind, served = msgpack.unpackb(body, raw=False)
    assert (kind, media) == (0, "application/octet-stream")
    assert served["weightData"].data == replaced.data
    assert served["weightSpecs"][-1]["group"] == "optimizer"


def test_task_folders_are_validated(tmp_path: Path) -> None:
    tasks = load_tasks(EXAMPLES / "tasks", "v2")
    assert tasks[TASK].settings.clients_per_round == 2
    with pytest.raises(DataValidationError, match="serve it with --protocol develop"):
        load_tasks(EXAMPLES / "tasks-develop", "v2")
    folder = make_tasks(tmp_path, "v2", clients_per_round=2, surprise=1)
    with pytest.raises(DataValidationError, match="unknown key"):
        load_tasks(folder, "v2")
    (folder / TASK / "lowcarb.json").write_text(
        json.dumps({"clients_per_round": 3, "min_clients": 2})
    )
    with pytest.raises(DataValidationError, match="below clients_per_round"):
        load_tasks(folder, "v2")
    (folder / TASK / "lowcarb.json").write_text("{}")
    manifest = json.loads((folder / TASK / "model.json").read_text())
    manifest["weightsManifest"][0]["paths"] = ["../../../etc/passwd"]
    (folder / TASK / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(DataValidationError, match="outside the model folder"):
        load_tasks(folder, "v2")
    shutil.copy(EXAMPLES / "tasks" / TASK / "model.json", folder / TASK / "model.json")
    (folder / TASK / "weights.bin").write_bytes(b"\x00" * 8)
    with pytest.raises(DataValidationError, match="manifest describes"):
        load_tasks(folder, "v2")
    task = json.loads((EXAMPLES / "tasks" / TASK / "task.json").read_text())
    task["taskID"] = "../evil"
    (folder / TASK / "task.json").write_text(json.dumps(task))
    with pytest.raises(DataValidationError, match="task id"):
        load_tasks(folder, "v2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="holds no task folder"):
        load_tasks(tmp_path / "empty", "v2")


def test_task_files_that_are_not_regular_or_too_deep_are_refused(tmp_path: Path) -> None:
    import os

    folder = make_tasks(tmp_path, "v2", clients_per_round=2)
    settings = folder / TASK / "lowcarb.json"
    settings.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataValidationError, match="task settings .* is nested too deeply"):
        load_tasks(folder, "v2")
    settings.unlink()
    os.mkfifo(settings)  # reading it would wait for a writer for ever
    with pytest.raises(DataValidationError, match="task settings .* is not a regular file"):
        load_tasks(folder, "v2")
    settings.unlink()
    task = folder / TASK / "task.json"
    task.unlink()
    task.symlink_to("/dev/zero")
    with pytest.raises(DataValidationError, match="is not a regular file"):
        load_tasks(folder, "v2")


@given(st.lists(st.integers(0, 255), max_size=600))
def test_byte_lists_decode_as_msgpack_does(values: list[int]) -> None:
    from lowcarb.adapters.disco._wire import decode_byte_list

    assert decode_byte_list(msgpack.packb(values)) == bytes(values)


@given(
    st.lists(
        st.one_of(
            st.integers(-(2**40), 2**40),
            st.none(),
            st.text(max_size=2),
            st.lists(st.integers(0, 3), max_size=2),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_anything_but_byte_values_is_refused(values: list[object]) -> None:
    from lowcarb.adapters.disco._wire import decode_byte_list

    packed = msgpack.packb(values)
    if all(isinstance(v, int) and 0 <= v <= 255 for v in values):
        assert decode_byte_list(packed) == bytes(values)  # type: ignore[arg-type]
    else:
        with pytest.raises(ProtocolViolation, match="list of byte values"):
            decode_byte_list(packed)


def test_hostile_frames_cost_little_memory() -> None:
    """A frame of empty arrays (1 byte each, 56 as Python lists) is refused unbuilt."""
    import tracemalloc

    from lowcarb.adapters.disco._wire import decode_byte_list, decode_message

    n = 4 * 2**20
    frames = {
        "empty arrays": b"\x82\xa4type\x08\xa7weights\xdd" + n.to_bytes(4, "big") + b"\x90" * n,
        "negative ints": b"\x82\xa4type\x08\xa7weights\xdd" + n.to_bytes(4, "big") + b"\xe0" * n,
        "nested arrays": b"\x82\xa4type\x08\xa7weights" + b"\x91" * 100 + b"\x80",
        "nested small fields": b"\x81\xa4type" + b"\x91" * 100 + b"\x80",
    }

    def decode(frame: bytes) -> bytes:
        _, raw = decode_message(frame, raw=frozenset({"weights"}))
        return decode_byte_list(raw["weights"])

    for name, frame in frames.items():
        tracemalloc.start()
        with pytest.raises(ProtocolViolation):
            decode(frame)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 16 * 2**20, (name, peak)  # a few times the 4 MiB frame at most
    # The biggest small field a message may carry stays small too.
    many = msgpack.packb({"type": 10, "metadata": [[[1] * 64] * 64] * 64})
    with pytest.raises(ProtocolViolation, match="more than 64 arrays"):
        decode_message(many)
