"""Checkpoints: one file holding specs, architecture config, weights and caller metadata.

The file is a ``torch.save`` dict of plain types and tensors only (specs and
metadata as JSON text), so it loads with ``weights_only=True``: opening a
checkpoint never runs pickled code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ranker._files import atomic_write
from ranker.features import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature
from ranker.model import BUILDERS, MultiTaskModel
from ranker.tasks import TaskSpec

__all__ = ["CheckpointError", "load_checkpoint", "model_fingerprint", "save_checkpoint"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or inconsistent; the message names it."""


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of the state dict: names, dtypes, shapes and values.

    Example:
        >>> from ranker import NumericFeature, TaskSpec, build_mmoe
        >>> len(model_fingerprint(build_mmoe([NumericFeature("x")], [TaskSpec("c")])))
        16
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _jsonable(obj: Any, where: str) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj), where)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    raise ValueError(
        f"checkpoint meta{where} is a {type(obj).__name__}; valid: JSON-like values "
        "(str, numbers, bool, None, lists, dicts, dataclasses, numpy arrays)"
    )


_FEATURE_KINDS: dict[str, type] = {
    "categorical": CategoricalFeature,
    "numeric": NumericFeature,
    "sequence": SequenceFeature,
}
"""Checkpoint ``kind`` of a feature spec -> its class."""


def _feature_to_dict(f: FeatureSpec) -> dict[str, Any]:
    kind = next(k for k, cls in _FEATURE_KINDS.items() if isinstance(f, cls))
    return {"kind": kind, **dataclasses.asdict(f)}


def _feature_from_dict(d: dict[str, Any]) -> FeatureSpec:
    d = dict(d)
    kind = d.pop("kind")
    if kind not in _FEATURE_KINDS:
        raise ValueError(
            f"checkpoint feature kind {kind!r} unknown; valid: {list(_FEATURE_KINDS)}"
        )
    return _FEATURE_KINDS[kind](**d)  # type: ignore[no-any-return]


def save_checkpoint(
    path: str | os.PathLike[str], model: MultiTaskModel, meta: Mapping[str, Any]
) -> str:
    """Write a model and metadata to ``path`` atomically (temp file + ``os.replace``).

    Args:
        path: Target file; its folder must exist.
        model: The model to save.
        meta: JSON-like metadata (data fingerprint, metrics...); dataclasses and
            numpy values are converted, non-finite floats are kept.

    Returns:
        The model fingerprint (:func:`model_fingerprint`).

    Example:
        >>> import tempfile
        >>> from ranker import CategoricalFeature, TaskSpec, build_mmoe
        >>> model = build_mmoe([CategoricalFeature("item", 10)], [TaskSpec("click")])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     fp = save_checkpoint(f"{folder}/ranker.pt", model, {"data": "ab12"})
        >>> fp == model_fingerprint(model)
        True
    """
    path = Path(path)
    spec = model.spec
    fingerprint = model_fingerprint(model)
    spec_json = json.dumps(
        {
            "arch": spec.arch,
            "features": [_feature_to_dict(f) for f in spec.features],
            "tasks": [dataclasses.asdict(t) for t in spec.tasks],
            "config": dataclasses.asdict(spec.config),
        }
    )
    payload = {
        "format_version": FORMAT_VERSION,
        "spec_json": spec_json,
        "meta_json": json.dumps(_jsonable(dict(meta), "")),
        "fingerprint": fingerprint,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    if not path.parent.is_dir():
        raise CheckpointError(
            f"cannot write checkpoint {path}: folder {path.parent} does not exist"
        )
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return fingerprint


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[MultiTaskModel, dict[str, Any]]:
    """Rebuild a model (in eval mode) and its metadata from a checkpoint file.

    Args:
        path: A file written by :func:`save_checkpoint`.

    Returns:
        The model and the metadata dict (with ``"fingerprint"`` added if absent).

    Raises:
        CheckpointError: The file is missing, not a checkpoint, of another
            format version, or its weights do not match its stored fingerprint.

    Example:
        >>> import tempfile
        >>> from ranker import CategoricalFeature, TaskSpec, build_mmoe
        >>> saved = build_mmoe([CategoricalFeature("item", 10)], [TaskSpec("click")])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     fp = save_checkpoint(f"{folder}/ranker.pt", saved, {"data": "ab12"})
        ...     model, meta = load_checkpoint(f"{folder}/ranker.pt")
        >>> meta["data"], meta["fingerprint"] == fp == model_fingerprint(model)
        ('ab12', True)
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        version = payload["format_version"]
        spec = json.loads(payload["spec_json"])
        meta = json.loads(payload["meta_json"])
        stored_fp = payload["fingerprint"]
        state = payload["state_dict"]
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt: {exc}") from exc
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}; this code reads {FORMAT_VERSION}"
        )
    arch = spec["arch"]
    if arch not in BUILDERS:
        raise CheckpointError(
            f"checkpoint {path} has architecture {arch!r}; known: {sorted(BUILDERS)}"
        )
    config_cls, builder = BUILDERS[arch]
    try:
        config = config_cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in spec["config"].items()}
        )
        features = [_feature_from_dict(f) for f in spec["features"]]
        tasks = [TaskSpec(**t) for t in spec["tasks"]]
        model = builder(features, tasks, config)
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} does not rebuild a model: {exc}") from exc
    if model_fingerprint(model) != stored_fp:
        raise CheckpointError(f"checkpoint {path}: weights do not match the stored fingerprint")
    model.eval()
    meta.setdefault("fingerprint", stored_fp)
    return model, meta
