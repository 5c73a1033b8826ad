"""Fixtures for batch scoring: models trained once by normal SageMaker scripts on the default
0.23-1 runtime, and databases on DuckDB, SQLite and the suite's real PostgreSQL."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.data import DbConnection

# A normal SageMaker scikit-learn script.  Its predict_fn refuses values above 1000 (so a
# chosen batch fails with the model's own message), sleeps on 2000 (so a test can act
# while a request is in flight) and kills its own worker on 3000 (a worker crash).
SCRIPT = textwrap.dedent(
    """
    import os
    import signal
    import time

    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def predict_fn(data, model):
        data = np.asarray(data, dtype=float)
        if (data == 3000).any():
            os.kill(os.getpid(), signal.SIGKILL)
        if (data == 2000).any():
            time.sleep(3)
            data = np.where(data == 2000, 0.0, data)
        if (data > 1000).any():
            raise ValueError("feature value %r is out of range" % float(data.max()))
        return model.predict(data)


    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LogisticRegression().fit(df.iloc[:, 1:], df.iloc[:, 0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """
)

NO_MODEL_FN = textwrap.dedent(
    """
    import os

    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LogisticRegression().fit(df.iloc[:, 1:], df.iloc[:, 0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """
)

FEATURES = ["A", "B", "C"]


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """``ID`` plus three numeric features; the label is the sign of their sum."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 3)).round(6)
    data = pd.DataFrame(values, columns=FEATURES)
    data.insert(0, "ID", np.arange(1, rows + 1, dtype=np.int64))
    return data


@pytest.fixture(scope="session")
def scoring_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scoring-home")


def train_scripts(home: Path, work: Path, scripts: dict[str, str]) -> dict[str, str]:
    """Train each ``name -> script text`` on 200 rows of :func:`frame` (label: the sign of
    the features' sum) in FEDSAGE_HOME ``home``; return the job name of each."""
    train = frame(200, seed=1)
    labels = (train[FEATURES].sum(axis=1) > 0).astype(int)
    data = pd.concat([labels.rename("y"), train[FEATURES]], axis=1)
    for name, text in scripts.items():
        (work / f"{name}.py").write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEDSAGE_HOME", str(home))
        patch.chdir(work)
        dwc = DwcSagemaker(prefix="scoring")
        return {
            name: dwc.train_sklearn_model(
                data, train_script=f"{name}.py", wait=True, logs="None"
            ).job_name
            for name in scripts
        }


@pytest.fixture(scope="session")
def trained(scoring_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Job names of the two models (trained once, in the session's own FEDSAGE_HOME)."""
    jobs = train_scripts(scoring_home, tmp_path_factory.mktemp("scoring-train"),
                         {"train": SCRIPT, "plain": NO_MODEL_FN})
    return {"good": jobs["train"], "plain": jobs["plain"]}


@pytest.fixture()
def dwc(
    scoring_home: Path, trained: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> DwcSagemaker:
    monkeypatch.setenv("FEDSAGE_HOME", str(scoring_home))
    monkeypatch.chdir(tmp_path)
    return DwcSagemaker(prefix="scoring")


@pytest.fixture()
def duck(tmp_path: Path) -> Iterator[DbConnection]:
    conn = DbConnection.from_url(f"duckdb:///{tmp_path / 'd.duckdb'}")
    try:
        yield conn
    finally:
        conn.close()


ROWS = 57  # not a multiple of the shrunk batch sizes


def endpoint_predictions(dwc: DwcSagemaker, job: str, data: pd.DataFrame) -> list[int]:
    """What the deployed endpoint answers for ``data``'s feature rows (one CSV request)."""
    name = dwc.deploy(job, 1, "local", cleanup_resources=False)
    try:
        body = data[FEATURES].to_csv(header=False, index=False)
        answer = dwc.predict(name, body, content_type="text/csv", accept="text/csv")
    finally:
        dwc.delete_endpoint(name)
    return [int(float(v)) for v in answer.split()]


@pytest.fixture(scope="session")
def reference(
    scoring_home: Path, trained: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> list[int]:
    """The endpoint's predictions for ``frame(ROWS)``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEDSAGE_HOME", str(scoring_home))
        patch.chdir(tmp_path_factory.mktemp("scoring-ref"))
        return endpoint_predictions(DwcSagemaker(prefix="scoring"), trained["good"], frame(ROWS))
