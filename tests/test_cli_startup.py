"""The command line imports a sub-command only when it runs, so that it starts at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import invoke

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
    "pydantic",
    # argparse parses; list commands print plain text (rich only draws progress bars)
    "typer",
    "click",
    "rich",
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
    env = {"FEDSAGE_HOME": str(tmp_path), "COLUMNS": "120"}
    result = invoke(["-v", "endpoints", "--mode", "local", "list", "-o", "json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    bad = invoke(["endpoints", "--mode", "nowhere", "list"], env=env)
    assert bad.exit_code == 1 and "nowhere" in bad.stderr


@pytest.mark.parametrize("name", list(LAZY))
def test_the_root_help_is_each_commands_own(name: str) -> None:
    _, _, short = LAZY[name]
    parser = load_command(name)
    assert parser.description is not None
    assert parser.description.strip().splitlines()[0] == short
    assert parser.prog == f"fedsage {name}"
    # the root lists the same line for it
    assert short in " ".join(invoke(["--help"], env={"COLUMNS": "200"}).stdout.split())


def test_export_writes_to_the_path(tmp_path: Path) -> None:
    target = tmp_path / "one.csv"
    loaded = _modules_after(tmp_path, "data", "export", "SELECT 7 AS a", "--to", str(target),
                            "--config", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert "fedsage.cli.data" in loaded and "pydantic" not in loaded
    assert target.read_text() == "7\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "head", "T", "-n", "many"],
         "argument --rows/-n: 'many' is not a valid integer"),
        (["data", "head", "T", "-n", "0"], "argument --rows/-n: 0 is smaller than the minimum 1"),
        (["score", "m", "--table", "T", "--to-table", "O", "--max-payload", "big"],
         "argument --max-payload: 'big' is not a valid number"),
        (["score", "m", "--table", "T", "--to-table", "O", "--workers", "two"],
         "argument --workers: 'two' is not a valid integer"),
        (["endpoints", "list", "--bogus"], "unrecognized arguments: --bogus"),
        (["data", "export", "q"], "the following arguments are required: --to"),
        (["endpoints", "describe"], "the following arguments are required: name"),
        (["nosuch"], "argument COMMAND: invalid choice: 'nosuch'"),
        (["runtimes", "build"], "name at least one VERSION, or use --all"),
    ],
)
def test_usage_errors_name_the_option_and_exit_2(argv: list[str], message: str) -> None:
    result = invoke(argv, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stdout == ""
    # the usage line of the (sub-)command that was called
    prog = "fedsage " + " ".join(argv[:2] if argv[0] in {"data", "endpoints", "runtimes"}
                                 else argv[:1] if argv[0] in LAZY else [])
    assert result.stderr.startswith(f"usage: {prog.strip()} "), result.stderr


@pytest.mark.parametrize("argv", [[], ["-v"], ["endpoints"], ["jobs", "--mode", "local"]])
def test_a_group_without_its_command_prints_its_help_and_exits_2(argv: list[str]) -> None:
    result = invoke(argv)
    assert result.exit_code == 2
    assert result.stdout.startswith("usage: fedsage") and "commands:" in result.stdout


def test_fedsage_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    result = invoke(["endpoints", "describe", "x[/]y"], env={"FEDSAGE_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "'x[/]y'" in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
