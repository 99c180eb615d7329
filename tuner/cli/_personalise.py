"""``search personalise``: a learned weight model w(x) beside a finished global study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from tuner.cli._common import STORAGE, STUDY, dump, load_existing, storage_url, user_errors
from tuner.evaluation.loss_study import is_loss_study
from tuner.evaluation.search_data import SearchSettings
from tuner.evaluation.streamed import open_workspace
from tuner.picks.picking import pick_weights
from tuner.segments import WeightModelConfig, refuse_segment_study
from tuner.segments._cli import compare_dict, compare_text
from tuner.segments._personalise import PersonaliseOutcome, learned_study_name, personalise

__all__ = ["search_personalise"]


@click.command("personalise")
@STORAGE
@STUDY
@click.option("--features", "features_text", metavar="F1,F2",
              help="Request-level log features the model reads, e.g. "
                   "user_activity,user_segment (default: the stored model's).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Export folder: weight_model.pt (TorchScript) and weight_model.json.")
@click.option("--force", is_flag=True, help="Overwrite the --out folder if it exists.")
@click.option("--retrain", is_flag=True, help="Train again even if the study holds a model.")
@click.option("--seed", type=int, default=None, help="Seed of the initialisation and the "
              "train/validation cut  [default: 0]")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs (passes over the training requests)  [default: 300]")
@click.option("--tau", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Soft-rank temperature, in fused-score units  [default: 0.1]")
@click.option("--hidden", type=click.IntRange(min=1), default=None,
              help="Width of the hidden layer  [default: 16]")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Epochs without a better validation surrogate before stopping  "
                   "[default: 30]")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="Share of the search split held for early stopping  "
                                 "[default: 0.25]")
@click.option("--batch-requests", type=click.IntRange(min=1), default=None,
              help="Requests an Adam step reads  [default: all of them up to 2**24 soft-rank "
                   "entries (20,000 requests of 20 candidates), else ~2**22 entries a batch]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-progress", is_flag=True, help="No training progress on stderr.")
@user_errors
def search_personalise(storage: str, study_name: str, features_text: str | None,
                       out: Path | None, force: bool, retrain: bool, as_json: bool,
                       no_progress: bool, **hyper: Any) -> None:
    """Learn personalised weights w(x) from request features, starting at the pick.

    The model starts at the global study's pick (CEM's mean), trains on its
    search split (a soft-rank surrogate of the SNIPS objective, early stopping
    on a validation part), and is valued on the held-out split paired with the
    global pick. It is exported only when that lift's 95% interval lies above 0
    and the guardrails hold; otherwise the export says "personalised": false.
    The result is stored in study <study>/learned; a rerun reuses it.
    """
    url = storage_url(storage)
    study, search = load_existing(url, study_name)
    refuse_segment_study(study, "personalise")
    if is_loss_study(search.settings):
        raise ValueError(f"study {study_name!r} is a loss-weight study; personalise a fusion "
                         "study (its score table is fixed)")
    if len(study.directions) > 1:
        raise ValueError(f"study {study_name!r} is a Pareto study; personalise needs a single "
                         "objective")
    weights, _ = pick_weights(study, search, "strategy")
    ws = open_workspace(SearchSettings.from_dict(search.settings))  # a folder: streamed
    features = None if features_text is None else [
        f.strip() for f in features_text.split(",") if f.strip()]
    overrides = {k: v for k, v in hyper.items() if v is not None}
    done = personalise(url, study_name, ws, np.asarray(weights), search.space.pinned,
                       features, overrides, retrain, out, force,
                       lambda m: click.echo(m, err=True),
                       None if no_progress else _progress(
                           overrides.get("epochs", WeightModelConfig().epochs)))
    _report(study_name, done, as_json)


def _progress(epochs: int) -> Any:
    every = max(1, epochs // 20)

    def show(epoch: int, train: float, validation: float) -> None:
        if epoch % every == 0:
            click.echo(f"epoch {epoch}: surrogate objective train {train:.5f}, validation "
                       f"{validation:.5f}", err=True)

    return show


def _report(study_name: str, done: PersonaliseOutcome, as_json: bool) -> None:
    where = f"trial {done.trial_number} of study {learned_study_name(study_name)!r}"
    est, decision = done.evaluation.estimate, done.evaluation.decision
    if as_json:
        dump({"study": learned_study_name(study_name), "trial": done.trial_number,
              "reused": done.reused, "best_epoch": done.best_epoch,
              "epochs_run": done.epochs_run, "out": None if done.out is None else str(done.out),
              "learned": compare_dict(est, decision, "learned")})
        return
    how = ("reused" if done.reused else
           f"trained {done.epochs_run} epochs, kept epoch {done.best_epoch}")
    click.echo(f"learned weight model: {where} ({how})")
    click.echo(compare_text(est, decision, "learned", "learned weight model"))
    if done.out is not None:
        kind = "TorchScript + JSON" if decision.personalised else "JSON: personalised false"
        click.echo(f"wrote {done.out} ({kind})")
