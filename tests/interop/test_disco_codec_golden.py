"""Codec golden tests: what DISCO's code encodes, lowcarb decodes and re-encodes, bit for bit."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import msgpack
import numpy as np
import pytest

from lowcarb.adapters.disco import ModelArtifacts
from lowcarb.adapters.disco._develop import EXT_ARRAY_BUFFER as DEVELOP_EXT
from lowcarb.adapters.disco._develop import Develop
from lowcarb.adapters.disco._v2 import EXT_ARRAY_BUFFER as V2_EXT
from lowcarb.adapters.disco._v2 import V2

pytestmark = pytest.mark.interop


def _node(node_fixture: Path, *args: str) -> str:
    done = subprocess.run(
        ["node", str(node_fixture / "golden.js"), *args],
        cwd=node_fixture,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def _bits(arrays: list[np.ndarray]) -> list[tuple[tuple[int, ...], bytes]]:
    return [(tuple(a.shape), np.asarray(a, dtype="<f4").tobytes()) for a in arrays]


@pytest.fixture(scope="module")
def golden(node_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    _node(node_fixture, "make", str(out))
    return out


@pytest.fixture(scope="module")
def tensors(golden: Path) -> list[np.ndarray]:
    return [
        np.frombuffer(base64.b64decode(t["f32"]), dtype="<f4").reshape(t["shape"])
        for t in json.loads((golden / "tensors.json").read_text())
    ]


def test_v2_weights_decode_and_reencode_byte_for_byte(
    golden: Path, tensors: list[np.ndarray]
) -> None:
    encoded = json.loads((golden / "v2_weights.json").read_text())
    decoded = V2().decode_weights(encoded)
    # discojs 2.1.1 writes JS numbers, so -0 travels as the integer 0: only that differs.
    expected = [np.where(t == 0, np.float32(0), t) for t in tensors]
    assert _bits(decoded) == _bits(expected)
    assert V2().encode_weights(decoded) == encoded


def test_develop_weights_decode_and_reencode_byte_for_byte(
    golden: Path, tensors: list[np.ndarray]
) -> None:
    encoded = (golden / "develop_weights.bin").read_bytes()
    decoded = Develop().decode_weights(encoded)
    assert _bits(decoded) == _bits(tensors)
    assert Develop().encode_weights(decoded) == encoded


def test_models_round_trip_through_node(
    golden: Path, tensors: list[np.ndarray], node_fixture: Path
) -> None:
    v2_raw = msgpack.unpackb(bytes(json.loads((golden / "v2_model.json").read_text())), raw=False)
    assert v2_raw["weightData"].code == V2_EXT
    v2_raw["weightData"] = v2_raw["weightData"].data
    v2_model = ModelArtifacts.from_dict(v2_raw)
    assert _bits(v2_model.weights()) == _bits(tensors)

    kind, dev_raw = msgpack.unpackb((golden / "develop_model.bin").read_bytes(), raw=False)
    assert kind == 0
    assert dev_raw["weightData"].code == DEVELOP_EXT
    dev_raw["weightData"] = dev_raw["weightData"].data
    dev_model = ModelArtifacts.from_dict(dev_raw)
    assert _bits(dev_model.weights()) == _bits(tensors)
    assert any(s.group == "optimizer" for s in dev_model.specs)  # kept, not served as weights

    # lowcarb writes every encoding back; DISCO's code decodes and loads them.
    (golden / "py_v2_weights.json").write_text(json.dumps(V2().encode_weights(tensors)))
    (golden / "py_v2_model.json").write_bytes(V2().model_body(v2_model)[0])
    (golden / "py_develop_weights.bin").write_bytes(Develop().encode_weights(tensors))
    (golden / "py_develop_model.bin").write_bytes(Develop().model_body(dev_model)[0])
    line = next(
        ln
        for ln in _node(node_fixture, "check", str(golden)).splitlines()
        if ln.startswith("LOWCARB_GOLDEN ")
    )
    report = json.loads(line.removeprefix("LOWCARB_GOLDEN "))
    assert report == {
        "v2_weights": True,
        "v2_model": True,
        "develop_weights": True,
        "develop_model": True,
    }
