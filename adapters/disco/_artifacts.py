"""TF.js model artifacts: read the layers format DISCO exports, and swap the weights.

A DISCO task's model is a TF.js *layers model*: ``model.json`` (the topology, the
training configuration and a weights manifest) plus the binary weight files it lists.
The bridge never builds a model; it keeps the artifacts and replaces only the bytes of
the model's weights after each aggregation, leaving an optimizer's state (weight specs
in the ``optimizer`` group, which DISCO's newer serializer appends) untouched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lowcarb import read_text_file
from lowcarb.exceptions import DataValidationError

__all__ = ["ModelArtifacts", "WeightSpec", "load_artifacts"]

#: Bytes per element of the dtypes TF.js writes (strings and quantization unsupported).
_DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1}
#: Largest model the bridge loads (bytes of weights); DISCO's own server caps JSON at 50 MB.
MAX_WEIGHT_BYTES = 256 * 2**20
#: ModelArtifacts fields served unchanged.
_EXTRA = ("format", "generatedBy", "convertedBy", "trainingConfig", "userDefinedMetadata")


@dataclass(frozen=True)
class WeightSpec:
    """One entry of a TF.js weights manifest.

    Attributes:
        name: The variable's name.
        shape: Its shape.
        dtype: ``float32``, ``int32`` or ``bool``.
        group: ``optimizer`` for optimizer state, else None or another group name.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    group: str | None = None

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes in the weight data."""
        return self.size * _DTYPE_BYTES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry, as TF.js writes it."""
        out: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.group is not None:
            out["group"] = self.group
        return out


def _spec(raw: Any, where: str) -> WeightSpec:
    if not isinstance(raw, dict):
        raise DataValidationError("a weights manifest entry is not an object", where)
    name, shape, dtype = raw.get("name"), raw.get("shape"), raw.get("dtype", "float32")
    if "quantization" in raw:
        raise DataValidationError(f"weight {name!r} is quantized; export it unquantized", where)
    if not isinstance(name, str) or dtype not in _DTYPE_BYTES:
        raise DataValidationError(f"weight {name!r} has an unsupported dtype {dtype!r}", where)
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise DataValidationError(f"weight {name!r} has an invalid shape {shape!r}", where)
    group = raw.get("group")
    return WeightSpec(name, tuple(shape), dtype, group if isinstance(group, str) else None)


@dataclass(frozen=True)
class ModelArtifacts:
    """A TF.js layers model as DISCO serializes it (``tf.io.ModelArtifacts``).

    Attributes:
        topology: ``modelTopology`` (Keras JSON).
        specs: The weight specs, in the order of ``data``.
        data: All weights' bytes, little-endian, concatenated in ``specs`` order.
        extra: The other fields (``format``, ``generatedBy``, ``convertedBy``,
            ``trainingConfig``, ``userDefinedMetadata``), served unchanged.
    """

    topology: dict[str, Any]
    specs: tuple[WeightSpec, ...]
    data: bytes
    extra: dict[str, Any]

    def __post_init__(self) -> None:
        expected = sum(s.nbytes for s in self.specs)
        if len(self.data) != expected:
            raise DataValidationError(
                f"the weights hold {len(self.data)} bytes but the manifest describes {expected}"
            )
        for spec in self.model_specs:
            if spec.dtype != "float32":
                raise DataValidationError(
                    f"model weight {spec.name!r} is {spec.dtype}, not float32"
                )

    @property
    def model_specs(self) -> tuple[WeightSpec, ...]:
        """Specs of the model's own weights (what clients exchange), in order."""
        return tuple(s for s in self.specs if s.group != "optimizer")

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the model's weights."""
        return tuple(s.shape for s in self.model_specs)

    def _offsets(self) -> list[tuple[WeightSpec, int]]:
        out, offset = [], 0
        for spec in self.specs:
            out.append((spec, offset))
            offset += spec.nbytes
        return out

    def weights(self) -> list[np.ndarray]:
        """The model's weights as float32 arrays (copies)."""
        return [
            np.frombuffer(self.data, dtype="<f4", count=spec.size, offset=offset)
            .reshape(spec.shape)
            .astype(np.float32)
            for spec, offset in self._offsets()
            if spec.group != "optimizer"
        ]

    def with_weights(self, weights: Sequence[np.ndarray]) -> ModelArtifacts:
        """These artifacts with the model's weights replaced (optimizer state kept).

        Raises:
            DataValidationError: If the number or shapes of ``weights`` do not match.
        """
        if len(weights) != len(self.model_specs):
            raise DataValidationError(
                f"{len(weights)} weight tensors given, the model has {len(self.model_specs)}"
            )
        data = bytearray(self.data)
        tensors = iter(weights)
        for spec, offset in self._offsets():
            if spec.group == "optimizer":
                continue
            tensor = np.asarray(next(tensors))
            if tuple(tensor.shape) != spec.shape:
                raise DataValidationError(
                    f"weight {spec.name!r} has shape {tuple(tensor.shape)}, expected {spec.shape}"
                )
            data[offset : offset + spec.nbytes] = tensor.astype("<f4").tobytes()
        return replace(self, data=bytes(data))

    @classmethod
    def from_dict(cls, raw: Any, where: str = "") -> ModelArtifacts:
        """Artifacts from a decoded ``tf.io.ModelArtifacts`` (``weightData`` as bytes).

        Raises:
            DataValidationError: If a field is missing or inconsistent.
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("modelTopology"), dict):
            raise DataValidationError("not a TF.js layers model (no modelTopology)", where)
        specs, data = raw.get("weightSpecs"), raw.get("weightData")
        if not isinstance(specs, list) or not isinstance(data, bytes):
            raise DataValidationError("weightSpecs or weightData is missing", where)
        extra = {k: raw[k] for k in _EXTRA if k in raw}
        return cls(raw["modelTopology"], tuple(_spec(s, where) for s in specs), data, extra)

    def to_dict(self, weight_data: Any) -> dict[str, Any]:
        """The ``tf.io.ModelArtifacts`` object, with ``weightData`` as given (codec-specific)."""
        return {
            "modelTopology": self.topology,
            **self.extra,
            "weightSpecs": [s.to_dict() for s in self.specs],
            "weightData": weight_data,
        }


def read_json_file(path: Path, what: str) -> Any:
    """The JSON in a regular file of bounded size (``what`` names it in errors).

    Raises:
        DataValidationError: For a file that is missing, not regular, too large, not
            UTF-8, not JSON or nested too deeply.
    """
    text = read_text_file(path, what=what, error=DataValidationError)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataValidationError(f"{what} {path} is not JSON: {exc}") from None
    except RecursionError:
        raise DataValidationError(f"{what} {path} is nested too deeply") from None


def load_artifacts(model_json: Path) -> ModelArtifacts:
    """Read a TF.js layers model (``model.json`` and the weight files it lists).

    Raises:
        DataValidationError: If the files are missing, malformed or inconsistent.
    """
    where = str(model_json)
    raw = read_json_file(model_json, "the model")
    if not isinstance(raw, dict) or not isinstance(raw.get("modelTopology"), dict):
        raise DataValidationError("not a TF.js layers model (no modelTopology)", where)
    manifest = raw.get("weightsManifest")
    if not isinstance(manifest, list):
        raise DataValidationError("no weightsManifest", where)
    specs: list[WeightSpec] = []
    chunks: list[bytes] = []
    for group in manifest:
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list):
            raise DataValidationError("a weightsManifest group has no paths", where)
        specs.extend(_spec(s, where) for s in group.get("weights", []))
        for name in group["paths"]:
            path = (model_json.parent / str(name)).resolve()
            # A manifest names files beside model.json, never elsewhere on the disk.
            if path.parent != model_json.parent.resolve():
                raise DataValidationError(
                    f"weight file {name!r} is outside the model folder", where
                )
            if not path.is_file() or path.stat().st_size > MAX_WEIGHT_BYTES:
                raise DataValidationError(f"weight file {name!r} is missing or too large", where)
            chunks.append(path.read_bytes())
    extra = {k: raw[k] for k in _EXTRA if k in raw}
    try:
        return ModelArtifacts(raw["modelTopology"], tuple(specs), b"".join(chunks), extra)
    except DataValidationError as exc:
        raise DataValidationError(str(exc), where) from None
