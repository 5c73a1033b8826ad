"""aws mode's batch_transform against moto: S3 parts, the Batch Transform job's settings,
the ``.out`` parts read back into the target in one commit.

moto records a transform job but runs no model and writes no ``.out`` parts, so the first
test proves the job's settings and that a job without output leaves the target untouched;
the second stands in for the service's container (it answers every line of every part
in S3 with ``a + b``) to prove the read-back, join and commit path against moto's S3.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.backends.aws import AwsBackend
from fedsage.errors import ConfigurationError, ScoringError

FRAME = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})


def _scored_frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"ID": range(1, rows + 1), "a": [float(i) for i in range(rows)],
                         "b": [0.5] * rows})


@pytest.fixture
def trained(train_script: Path) -> tuple[DwcSagemaker, Any]:
    dwc = DwcSagemaker(mode="aws", prefix="scoring")
    clf = dwc.train_sklearn_model(FRAME, train_script=str(train_script),
                                  instance_type="ml.m5.large", wait=True, logs="None")
    return dwc, clf


def test_transform_job_settings_and_no_output(trained, sm: Any, s3: Any, tmp_path: Path):
    dwc, clf = trained
    target = tmp_path / "scores.csv"
    with pytest.raises(ScoringError, match=r"wrote no part-00000.csv.out for input rows 1 to 7"):
        dwc.batch_transform(clf, _scored_frame(7), target, keep_columns=["ID"],
                            instance_type="ml.m5.xlarge", instance_count=2, max_payload=4,
                            progress=False)
    assert not target.exists()
    jobs = sm.list_transform_jobs()["TransformJobSummaries"]
    assert len(jobs) == 1
    job = sm.describe_transform_job(TransformJobName=jobs[0]["TransformJobName"])
    assert job["BatchStrategy"] == "MultiRecord"
    assert job["MaxPayloadInMB"] == 4
    assert job["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2}
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    bucket = dwc._backend.store.bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if "/batch-" in k]  # the run's parts are gone


class _StandInTransformer:
    """What SageMaker's container would write: one answer line per input line, per part."""

    def __init__(self, store: Any, output_path: str) -> None:
        self.store = store
        self.output = output_path.split("/", 3)[3]

    def transform(self, data: str, **kwargs: Any) -> None:
        assert kwargs["split_type"] == "Line" and kwargs["content_type"] == "text/csv"
        prefix = data.split("/", 3)[3]
        for key in self.store.list(prefix):
            local = self.store.download(key, Path(f"part-{key.rsplit('-', 1)[-1]}"))
            frame = pd.read_csv(local, header=None)
            answer = "".join(f"{v}\n" for v in frame[0] + frame[1])
            name = key.rsplit("/", 1)[-1]
            self.store.put_stream(f"{self.output}{name}.out", io.BytesIO(answer.encode()))


class _StandInModel:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.settings: dict[str, Any] = {}

    def transformer(self, **settings: Any) -> _StandInTransformer:
        self.settings = settings
        return _StandInTransformer(self.store, settings["output_path"])


def test_out_parts_are_joined_and_committed(trained, monkeypatch, tmp_path: Path):
    from fedsage.backends import _aws_transform

    dwc, clf = trained
    backend = dwc._backend
    assert isinstance(backend, AwsBackend)
    stand_in = _StandInModel(backend.store)
    monkeypatch.setattr(AwsBackend, "_serving_model", lambda self, *a, **k: stand_in)
    monkeypatch.setattr(_aws_transform, "PART_ROWS", 4)  # several parts
    target = tmp_path / "scores.parquet"
    summary = dwc.batch_transform(clf, _scored_frame(11), target, keep_columns=["ID"],
                                  batch_rows=2, instance_type="ml.m5.large", progress=False)
    assert summary.rows_written == 11 and summary.requests == 3  # parts of 4, 4, 3 rows
    written = pd.read_parquet(target)
    assert written["ID"].tolist() == list(range(1, 12))
    assert written["prediction"].tolist() == [i + 0.5 for i in range(11)]
    assert stand_in.settings["strategy"] == "MultiRecord"
    assert stand_in.settings["max_payload"] == 6


def test_aws_refusals(trained, tmp_path: Path):
    dwc, clf = trained
    with pytest.raises(ConfigurationError, match="instance_type"):
        dwc.batch_transform(clf, _scored_frame(3), tmp_path / "o.csv", progress=False)
    with pytest.raises(ConfigurationError, match="text/csv parts"):
        dwc.batch_transform(clf, _scored_frame(3), tmp_path / "o.csv", progress=False,
                            instance_type="ml.m5.large", content_type="application/json")
    with pytest.raises(ConfigurationError, match="not one"):
        dwc.batch_transform("some-endpoint", _scored_frame(3), tmp_path / "o.csv",
                            progress=False, instance_type="ml.m5.large")
    assert not (tmp_path / "o.csv").exists()
