"""The export of a learned weight model: a folder a server reads, written atomically.

``weight_model.pt`` (TorchScript) and ``weight_model.json`` (the model's every parameter,
its features and their normalisation, the formula, the tasks, the default weights and the
guard's verdict), checked to reproduce the trained model's weights before the folder is put
in place; when the guard refuses, ``weight_model.json`` alone says ``"personalised": false``
with the reason and the default (global) weights.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.files import replace_folder
from simulator.fusion import make_fusion
from tuner.evaluation.search_data import Workspace
from tuner.evaluation.streamed import StreamedWorkspace
from tuner.segments._learned import LearnedWeights, weights_from_json

if TYPE_CHECKING:
    from tuner.segments._personalise import LearnedEvaluation

__all__ = ["MODEL_FILE", "SPEC_FILE", "write_export"]

MODEL_FILE, SPEC_FILE = "weight_model.pt", "weight_model.json"
_REPRODUCE_RTOL = 1e-5


def write_export(out: Path, learned: LearnedWeights, evaluation: LearnedEvaluation,
                 ws: Workspace | StreamedWorkspace, global_weights: np.ndarray,
                 check_rows: np.ndarray,
                 overwrite: bool, about: Mapping[str, Any]) -> Path:
    """Write the export folder ``out`` atomically (a new folder beside it, renamed).

    Personalised: ``weight_model.pt`` (TorchScript) and ``weight_model.json`` (the model,
    its features and normalisation, the formula, the tasks), checked to reproduce the
    trained model's weights on ``check_rows`` ``[R, F]`` (held-out features) before the
    folder is put in place. Not personalised: ``weight_model.json`` says
    ``"personalised": false`` with the guard's reason and the default (global) weights.

    Raises:
        ValueError: ``out`` exists and not ``overwrite``, or an exported file does not
            reproduce the weights (nothing is left written).
    """
    if out.exists() and not overwrite:
        raise ValueError(f"--out {out} exists; give --force to overwrite it")
    tasks = ws.score_tasks
    decision = evaluation.decision
    extra = {"personalised": decision.personalised, "guard": decision.to_dict(),
             "default_weights": dict(zip(tasks, map(float, global_weights), strict=True)),
             "fusion": make_fusion(ws.settings.formula).describe(),
             "objective": dict(ws.settings.objective), **about}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.tmp"
    os.mkdir(tmp)  # 0777 less the umask, as a plain mkdir
    try:
        if decision.personalised:
            pt, js = learned.export(tmp, extra)
            _check_reproduces(learned, pt, js, check_rows)
        else:
            head = {"format": "fusiontune-weight-model", "version": "1.0",
                    "features": list(learned.features), "tasks": list(tasks)}
            (tmp / SPEC_FILE).write_text(json.dumps({**head, **extra}, indent=1) + "\n")
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_reproduces(learned: LearnedWeights, pt: Path, js: Path, x: np.ndarray) -> None:
    """Refuse an export whose TorchScript or JSON gives other weights than the model."""
    import warnings

    import torch

    want = learned.weights(x)
    with warnings.catch_warnings():  # torch marks jit deprecated; servers still read it
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(pt))
    with torch.no_grad():
        got_pt = scripted(torch.from_numpy(np.asarray(x, np.float32))).double().numpy()
    got_js = weights_from_json(json.loads(js.read_text()), x)
    for what, got in ((MODEL_FILE, got_pt), (SPEC_FILE, got_js)):
        if got.shape != want.shape or not np.allclose(got, want, rtol=_REPRODUCE_RTOL,
                                                      atol=0.0):
            worst = float(np.max(np.abs(got / want - 1))) if got.shape == want.shape else 1.0
            raise ValueError(f"the exported {what} does not reproduce the trained model's "
                             f"weights on {len(x):,} held-out requests (largest relative "
                             f"difference {worst:.2g} > {_REPRODUCE_RTOL:g}); nothing written")
