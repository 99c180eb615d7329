"""The ``fusiontune`` group: a light root whose commands are imported when they run.

``fusiontune --help`` and ``fusiontune search --help`` must answer at once, so the root
and the ``search`` group import click and nothing else: each command's module (numpy,
Optuna, SQLAlchemy, the simulator; torch for ``ranker``) is imported only when that command
is looked up. The one-line help of a command shown in a group's listing is kept here
beside its import path, and ``tests/tuner/test_cli.py`` checks that it is the command's
own.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["LazyCommand", "LazyGroup", "main", "search"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a subcommand lives (``"module:attribute"``) and its one-line help."""

    target: str
    short_help: str

    def load(self) -> click.Command:
        module, _, attr = self.target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first lookup.

    Args:
        lazy: subcommand name -> :class:`LazyCommand`.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing of ``--help``, from the stored one-line helps (no import)."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                text = command.get_short_help_str(formatter.width - 6 - len(name))
            else:
                # click's own truncation, through a stand-in command (public API)
                stand_in = click.Command(name, help=self.lazy[name].short_help)
                text = stand_in.get_short_help_str(formatter.width - 6 - len(name))
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


COMMANDS = {
    "demo": LazyCommand("tuner.cli._demo:demo",
                        "Run the whole loop on the embedded synthetic marketplace."),
    "ranker": LazyCommand("tuner.cli._ranker:ranker",
                          "Train, evaluate and score the multi-task ranker on KuaiRand-Pure "
                          "from a run file."),
    "world": LazyCommand("tuner.cli._world:world",
                         "Worlds with known ground truth, written as datasets a search can run "
                         "on."),
}

SEARCH_COMMANDS = {
    "run": LazyCommand("tuner.cli._search:search_run",
                       "Run a study to --rounds generations; a new study needs --config, or "
                       "--logs, --scores and --objective."),
    "worker": LazyCommand("tuner.cli._search:search_worker",
                          "Evaluate claimed chunks of a study's generations until its target."),
    "history": LazyCommand("tuner.cli._history:search_history",
                           "Show the rounds (or trials) of a study; --plot draws them."),
    "export": LazyCommand("tuner.cli._search:search_export",
                          "Export a weight vector, judged on the held-out split, as JSON for "
                          "serving."),
    "ask": LazyCommand("tuner.cli._live:search_ask",
                       "Write the next live round's groups (and the control) for an "
                       "experiment platform."),
    "tell": LazyCommand("tuner.cli._live:search_tell",
                        "Tell the study the online results of some (or all) groups of its "
                        "live round."),
    "compare": LazyCommand("tuner.cli._compare:search_compare",
                           "Compare the strategy's pick (CEM's mean), the best trials and "
                           "the control on one split."),
    "personalise": LazyCommand("tuner.cli._personalise:search_personalise",
                               "Learn personalised weights w(x) from request features, "
                               "starting at the pick."),
    "pareto": LazyCommand("tuner.cli._pareto:search_pareto",
                          "Search and print the Pareto front of 2 or 3 metrics, such as "
                          "clicks against likes."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fusiontune")
@click.option("-v", "--verbose", is_flag=True, help="Show Optuna's own log lines.")
def main(verbose: bool) -> None:
    """Tune the fusion weights of a multi-task ranker offline.

    Start with `fusiontune demo`: it runs the whole loop on an embedded
    synthetic world in ~20 s on 2 cores, with nothing to download or start.
    """
    # --verbose is read by each command (tuner.cli._common.user_errors), which imports Optuna


@main.group(cls=LazyGroup, lazy=SEARCH_COMMANDS)
def search() -> None:
    """Run, inspect and export a fusion-weight search stored in a database."""
