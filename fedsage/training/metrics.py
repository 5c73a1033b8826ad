"""Training metrics from a job's log, as SageMaker extracts them with ``metric_definitions``.

SageMaker matches every log line against each definition's regex; the first group is
the value.  Its log store writes a tab as ``#011``, so regexes written for SageMaker
(the built-in XGBoost's among them) often say ``#011``: a line is tried as written and
then with its tabs spelled that way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["METRICS_FILE", "MetricScanner", "final_metrics", "read_points"]

#: The file in a local job's folder that holds its metric points, one JSON object a line.
METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class _Definition:
    name: str
    regex: re.Pattern[str]


class MetricScanner:
    """Finds metric values in log lines.

    Parameters
    ----------
    definitions : iterable of dict
        ``{"Name": ..., "Regex": ...}`` entries (already checked).
    """

    def __init__(self, definitions: Iterable[dict[str, str]]) -> None:
        self._definitions = [_Definition(d["Name"], re.compile(d["Regex"])) for d in definitions]

    def __bool__(self) -> bool:
        return bool(self._definitions)

    def scan(self, line: str, timestamp: float) -> Iterator[dict[str, Any]]:
        """The metric points ``line`` holds, stamped ``timestamp`` (POSIX seconds)."""
        escaped = line.replace("\t", "#011") if "\t" in line else None
        for definition in self._definitions:
            match = definition.regex.search(line)
            if match is None and escaped is not None:
                match = definition.regex.search(escaped)
            if match is None:
                continue
            try:
                value = float(match.group(1))
            except (TypeError, ValueError, IndexError):
                continue
            if math.isfinite(value):
                yield {"Timestamp": timestamp, "MetricName": definition.name, "Value": value}


def read_points(path: Path) -> list[dict[str, Any]]:
    """The points a runner wrote to ``path`` (one JSON object per line), times as datetimes."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    points = []
    for line in text.splitlines():
        try:
            point = json.loads(line)
        except ValueError:  # a line being written right now
            continue
        point["Timestamp"] = datetime.fromtimestamp(point["Timestamp"], timezone.utc)
        points.append(point)
    return points


def final_metrics(points: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``FinalMetricDataList``: the last value of each metric, in order of first appearance."""
    last: dict[str, dict[str, Any]] = {}
    for point in points:
        last[point["MetricName"]] = point
    return [
        {"MetricName": p["MetricName"], "Value": p["Value"], "Timestamp": p["Timestamp"]}
        for p in last.values()
    ]
