"""The command line's plain tables: kept columns whole, others shortened, colour on a tty."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from fedsage.cli._common import coloured, print_pairs, print_records

HEADERS = ["Name", "Status", "URL", "Created"]
ROWS = [
    ["an-endpoint-with-a-long-name", "InService", "http://127.0.0.1:41234", "2026-12-02 17:00:01"],
    ["short", "Failed", "http://127.0.0.1:8080", "2026-12-02 17:00:02"],
]


def _printed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int,
             **kwargs: object) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(columns))
    print_records(HEADERS, [list(r) for r in ROWS], **kwargs)  # type: ignore[arg-type]
    return capsys.readouterr().out.splitlines()


def test_columns_are_aligned_when_they_fit(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _printed(capsys, monkeypatch, 200, keep=(0, 2))
    assert lines[0].split() == HEADERS
    start = lines[0].index("Status")
    assert [line[start:].split()[0] for line in lines[1:]] == ["InService", "Failed"]
    assert lines[1].split() == [*ROWS[0][:3], *ROWS[0][3].split()]
    assert all(line == line.rstrip() for line in lines)


def test_other_columns_are_shortened_kept_ones_never(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _printed(capsys, monkeypatch, 75, keep=(0, 2))
    assert all(len(line) <= 75 for line in lines), lines
    assert ROWS[0][0] in lines[1] and ROWS[0][2] in lines[1]
    assert "…" in lines[1] and ROWS[0][3] not in lines[1]


def test_rows_become_blocks_when_the_kept_columns_do_not_fit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _printed(capsys, monkeypatch, 40, keep=(0, 2))
    assert lines[:3] == [ROWS[0][0], f"  URL: {ROWS[0][2]}",
                         f"  Status: InService  Created: {ROWS[0][3]}"]
    assert lines[3] == "short"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert coloured("Failed", "red", _Terminal()) == "\x1b[31mFailed\x1b[0m"
    assert coloured("Failed", "red", io.StringIO()) == "Failed"
    assert coloured("Failed", None, _Terminal()) == "Failed"
    monkeypatch.setenv("NO_COLOR", "1")
    assert coloured("Failed", "red", _Terminal()) == "Failed"


def test_coloured_cells_stay_aligned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    print_records(HEADERS, [list(r) for r in ROWS], keep=(0, 2),
                  colour=lambda column, value: "green" if column == 1 else None)
    plain = [line.replace("\x1b[32m", "").replace("\x1b[0m", "")
             for line in terminal.getvalue().splitlines()]
    assert "\x1b[32mInService\x1b[0m" in terminal.getvalue()
    start = plain[0].index("URL")
    assert [line[start:].split()[0] for line in plain[1:]] == [ROWS[0][2], ROWS[1][2]]


def test_pairs_are_aligned_and_values_never_cut(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "20")
    long = "/a/folder/" + "x" * 60
    print_pairs([("EndpointName", "e"), ("Local.dir", long)])
    assert capsys.readouterr().out.splitlines() == [
        "EndpointName   e", f"Local.dir      {long}"]


def test_a_reader_that_goes_away_stops_the_output_without_a_traceback(tmp_path: Path) -> None:
    # ``fedsage runtimes list | head -1``: the pipe closes before fedsage writes.
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedsage", "runtimes", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"FEDSAGE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    error = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, error
    assert error == ""
