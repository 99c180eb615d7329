"""A storage that cannot hold a study is one line naming the URL or path, exit code 1.

Root (CI) may write anywhere, so "read-only" is simulated without permissions: a path under
a file or under ``/proc``, SQLite's ``mode=ro`` URI, and a monkeypatched ``PermissionError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from tests.tuner.test_cli import assert_user_error, invoke
from tuner.storage import ProjectStore, StorageError, check_storage

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    return path


def _bad_storages(tmp_path: Path, text_file: Path) -> list[tuple[str, list[str]]]:
    """``(--storage, fragments of the message)`` of every kind of unusable storage."""
    return [
        (f"sqlite:///{tmp_path}/nodir/x.db", [f"{tmp_path}/nodir", "does not exist"]),
        (str(text_file), [str(text_file), "is not a SQLite database"]),
        (f"sqlite:///{text_file}/x.db", [str(text_file), "is a file, not a directory"]),
        ("sqlite:////proc/fusiontune-x.db", ["/proc/fusiontune-x.db", "cannot open or create"]),
        (str(tmp_path), [str(tmp_path), "is a directory"]),
    ]


@pytest.mark.parametrize("case", range(5))
def test_check_storage_names_the_url_and_the_problem(tmp_path: Path, text_file: Path,
                                                     case: int) -> None:
    url, fragments = _bad_storages(tmp_path, text_file)[case]
    url = url if "://" in url else f"sqlite:///{url}"
    with pytest.raises(StorageError) as info:
        ProjectStore(url).ensure_schema()
    message = str(info.value)
    assert message.startswith(f"storage {url}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert not (tmp_path / "nodir").exists()  # nothing was created on the way


@pytest.mark.parametrize("case", range(5))
def test_search_commands_print_one_line(demo_files: DemoFiles, tmp_path: Path, text_file: Path,
                                        case: int) -> None:
    storage, fragments = _bad_storages(tmp_path, text_file)[case]
    run = demo_files.new_study_args(Path("placeholder"), rounds=1, population=4)
    run[run.index("placeholder")] = storage
    assert_user_error(invoke(run), *fragments)
    for command in (["search", "history"], ["search", "export"]):
        result = invoke([*command, "--storage", storage, "--study", "s"])
        if "nodir" in storage or "/proc/" in storage or "/x.db" in storage:
            # a file that does not exist is not created by a reading command
            assert_user_error(result, "no database file")
        else:
            assert_user_error(result, *fragments)


def test_a_read_only_database_is_one_line(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="other")  # no fusiontune tables
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    with pytest.raises(StorageError, match=r"^storage .*ro\.db.*: attempt to write a readonly"):
        ProjectStore(url).ensure_schema()
    run = demo_files.new_study_args(Path("placeholder"), rounds=1, population=4)
    run[run.index("placeholder")] = url
    assert_user_error(invoke(run), f"storage {url}: ", "readonly database")


def test_a_plain_optuna_study_is_named_as_such(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="x", direction="minimize")
    for command in (["search", "history"], ["search", "export"], ["search", "run"]):
        result = invoke([*command, "--storage", str(db), "--study", "x"])
        assert_user_error(result, f"study 'x' in sqlite:///{db} is not a fusiontune study "
                                  "(made by plain Optuna?)")


def test_demo_out_that_cannot_be_made_or_written(tmp_path: Path, text_file: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert_user_error(invoke(["demo", "--out", f"{text_file}/demo"]),
                      f"{text_file}/demo: Not a directory")
    assert_user_error(invoke(["demo", "--out", "/proc/fusiontune-demo"]),
                      "/proc/fusiontune-demo: No such file or directory")

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)  # a read-only parent, as a non-root user sees
    out = tmp_path / "ro" / "demo"
    assert_user_error(invoke(["demo", "--out", str(out)]), f"{out}: Permission denied")


def test_a_server_that_does_not_answer_is_one_line() -> None:
    url = "postgresql://postgres@127.0.0.1:1/test"
    with pytest.raises(StorageError, match=r"^storage postgresql://postgres@127\.0\.0\.1:1/test"
                                           r": connection failed"):
        check_storage(url)
    assert_user_error(invoke(["search", "history", "--storage", url, "--study", "s"]),
                      f"storage {url}: ")
