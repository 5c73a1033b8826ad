"""The command line imports a sub-command only when it runs, so that it starts at once."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from fedsage.cli._app import LAZY, load_command

PROBE = """
import json, sys
from fedsage.cli import main
sys.argv = ["fedsage", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(home: Path, *argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        check=False,
        env={"FEDSAGE_HOME": str(home), "PATH": "/usr/bin:/bin", "COLUMNS": "120"},
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


HEAVY = {
    "fedsage.cli.data",
    "fedsage.cli.jobs",
    "fedsage.cli.kyma",
    "fedsage.cli.runtimes",
    "fedsage.cli.demo",
    "fedsage.runtimes.build",
    "fedsage.serving.supervisor",
    "fedsage.data",
    "httpx",
    "numpy",
    "pydantic",  # typer's coercion of str/bool values needs none
}


def test_help_imports_no_sub_command(tmp_path: Path) -> None:
    loaded = _modules_after(tmp_path, "--help")
    assert "fedsage.cli._app" in loaded
    assert not loaded & (HEAVY | {"fedsage.cli.endpoints", "fedsage.backends"}), (
        loaded & HEAVY
    )


def test_endpoints_list_imports_only_what_it_uses(tmp_path: Path) -> None:
    loaded = _modules_after(tmp_path, "endpoints", "list")
    assert {"fedsage.cli.endpoints", "fedsage.serving.endpoints"} <= loaded
    assert not loaded & HEAVY, loaded & HEAVY


def test_text_and_flag_values_arrive_as_given(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fedsage.cli import app

    runner = CliRunner()
    env = {"FEDSAGE_HOME": str(tmp_path), "COLUMNS": "120"}
    result = runner.invoke(app, ["-v", "endpoints", "--mode", "local", "list", "-o", "json"],
                           env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
    bad = runner.invoke(app, ["endpoints", "--mode", "nowhere", "list"], env=env)
    assert bad.exit_code != 0 and "nowhere" in bad.output


@pytest.mark.parametrize("name", list(LAZY))
def test_the_root_help_is_each_commands_own(name: str) -> None:
    module, attribute, short = LAZY[name]
    target = getattr(importlib.import_module(f"fedsage.cli.{module}"), attribute)
    own = target.info.help if isinstance(target, typer.Typer) else target.__doc__
    assert own.strip().splitlines()[0] == short
    assert load_command(name).name == name


def test_export_imports_no_pydantic_and_writes_to_the_path(tmp_path: Path) -> None:
    # --to is a Path option: click hands text, fedsage turns it into a Path itself.
    target = tmp_path / "one.csv"
    loaded = _modules_after(tmp_path, "data", "export", "SELECT 7 AS a", "--to", str(target),
                            "--config", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert "fedsage.cli.data" in loaded and "pydantic" not in loaded
    assert target.read_text() == "7\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "head", "T", "-n", "many"], "'--rows' / '-n': Input should be a valid integer"),
        (["data", "head", "T", "-n", "0"], "Input should be greater than or equal to 1"),
        (["score", "m", "--table", "T", "--to-table", "O", "--max-payload", "big"],
         "'--max-payload': Input should be a valid number"),
        (["score", "m", "--table", "T", "--to-table", "O", "--workers", "two"],
         "'--workers': Input should be a valid integer"),
    ],
)
def test_numbers_are_still_checked_by_typer(argv: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from fedsage.cli import app

    result = CliRunner().invoke(app, argv, env={"COLUMNS": "200"})
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_plain_values_arrive_with_their_own_types(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    seen: dict[str, object] = {}
    app = typer.Typer()

    @app.command()
    def probe(
        to: Path = typer.Option(...),
        maybe: Path | None = typer.Option(None),
        count: int = typer.Option(1),
        size: float = typer.Option(1.0),
        limit: int | None = typer.Option(None),
        flag: bool = typer.Option(False),
    ) -> None:
        seen.update(to=to, maybe=maybe, count=count, size=size, limit=limit, flag=flag)

    import fedsage.cli._app  # noqa: F401 - installs the pass-through

    result = CliRunner().invoke(
        app, ["--to", "a/b", "--count", "3", "--size", "2", "--limit", "4", "--flag"]
    )
    assert result.exit_code == 0, result.output
    assert seen == {"to": Path("a/b"), "maybe": None, "count": 3, "size": 2.0, "limit": 4,
                    "flag": True}
    assert [type(seen[k]) for k in ("to", "count", "size", "limit")] == [
        type(Path("a/b")), int, float, int]
