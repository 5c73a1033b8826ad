"""The request type batch scoring picks when the caller names none: npy holding the array
``text/csv`` decodes to, for a model that keeps the image's default input_fn and numeric
features; ``text/csv`` otherwise.  The predictions must be the same bytes either way."""

from __future__ import annotations

import io
import tarfile
import textwrap
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fedsage.scoring import codec, content
from fedsage.serving._worker.fedsage_worker import service

from ._helpers import read, scoring_endpoints
from .conftest import FEATURES, frame, train_scripts

# predict_proba: doubles that change in their last bits when the model gets float64
# instead of the float32 the image's CSV decoding gives, so a wrong npy dtype shows.
PROBA = textwrap.dedent(
    """
    import os

    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def predict_fn(data, model):
        return model.predict_proba(data)


    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LogisticRegression().fit(df.iloc[:, 1:], df.iloc[:, 0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
    """
)

# Its own input_fn, which takes text/csv only: scoring it works only if CSV is sent.
OWN_INPUT = PROBA.replace(
    "def predict_fn(data, model):",
    textwrap.dedent(
        """
        def input_fn(body, content_type):
            if content_type != "text/csv":
                raise ValueError("this input_fn reads text/csv, not %s" % content_type)
            return np.array([[float(v) for v in line.split(",")] for line in body.splitlines()])


        def predict_fn(data, model):"""
    ),
).replace("import joblib", "import joblib\nimport numpy as np")


@pytest.fixture(scope="module")
def models(scoring_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return train_scripts(scoring_home, tmp_path_factory.mktemp("content-train"),
                         {"proba": PROBA, "own_input": OWN_INPUT})


def _mixed_table(duck, name: str = "MIXED") -> None:
    """An integer, a double and a decimal feature, values of every size and sign."""
    from fedsage.data.writer import TableWriter

    i = np.arange(1, 138)
    table = pa.table(
        {
            "ID": pa.array(i, pa.int64()),
            "A": pa.array((i * 7919) % 2001 - 1000, pa.int64()),
            "B": pa.array(np.sin(i) * 10.0 ** (i % 7 - 3)),
            "C": pa.array([Decimal(f"{v:.4f}") for v in np.cos(i) * 13.37], pa.decimal128(12, 4)),
        }
    )
    with TableWriter(duck, name, arrow_schema=table.schema) as writer:
        writer.write(table)
        writer.commit(expected_rows=table.num_rows)
    types = duck.query(f"SELECT * FROM {duck.dialect.quote(name)} LIMIT 1").to_arrow().schema
    assert str(types.field("C").type).startswith("decimal")


def test_auto_npy_writes_the_same_bytes_as_text_csv(duck, dwc, models):
    _mixed_table(duck)
    limit = duck.execute_query("SELECT current_setting('memory_limit') AS m")[0]
    kwargs = {"keep_columns": ["ID"], "batch_rows": 20, "workers": 2, "progress": False}
    auto = dwc.batch_transform(models["proba"], duck.table("MIXED"), "AUTO", **kwargs)
    csv = dwc.batch_transform(
        models["proba"], duck.table("MIXED"), "CSV", content_type="text/csv", **kwargs
    )
    assert (auto.content_type, csv.content_type) == (codec.NPY, codec.CSV)
    assert "default input_fn" in auto.content_type_reason
    assert csv.content_type_reason == "given by the caller"
    assert "application/x-npy" in auto._repr_html_()
    by_npy, by_csv = read(duck, "AUTO"), read(duck, "CSV")
    assert list(by_npy.columns) == ["ID", "prediction_0", "prediction_1"]
    assert len(by_npy) == 137
    for column in ("prediction_0", "prediction_1"):  # the very same doubles, bit for bit
        assert by_npy[column].to_numpy().tobytes() == by_csv[column].to_numpy().tobytes()
    assert by_npy["ID"].tolist() == by_csv["ID"].tolist()
    assert scoring_endpoints() == []
    # DuckDB's memory_limit, capped while the table was scanned, is back as it was
    assert duck.execute_query("SELECT current_setting('memory_limit') AS m")[0] == limit


def test_a_script_with_its_own_input_fn_keeps_text_csv(duck, dwc, models):
    _mixed_table(duck)
    summary = dwc.batch_transform(
        models["own_input"],
        duck.table("MIXED"),
        "OUT",
        keep_columns=["ID"],
        batch_rows=50,
        progress=False,
    )
    assert summary.content_type == codec.CSV
    assert "own_input.py: it defines input_fn" in summary.content_type_reason
    assert len(read(duck, "OUT")) == 137


def test_explicit_content_type_wins_and_booleans_keep_csv(dwc, trained, tmp_path):
    summary = dwc.batch_transform(
        trained["good"],
        frame(20),
        tmp_path / "auto.csv",
        keep_columns=["ID"],
        content_type="application/json",
        progress=False,
    )
    assert (summary.content_type, summary.content_type_reason) == (
        codec.JSON,
        "given by the caller",
    )
    data = frame(20)
    data["A"] = data["A"] > 0  # the default decoder cannot parse CSV booleans either way
    schema = pa.Table.from_pandas(data, preserve_index=False).schema
    choice = content.choose(schema, FEATURES, None)
    assert choice.content_type == codec.CSV and "'A' is bool" in choice.reason


# -- the decision, read from the script's source ------------------------------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("def model_fn(d):\n    pass\ndef predict_fn(x, m):\n    return m.predict(x)\n", None),
        ('"""Mentions input_fn in prose only."""\nimport os\n', None),
        ("def input_fn(body, content_type):\n    pass\n", "it defines input_fn"),
        ("def transform_fn(m, b, c, a):\n    pass\n", "it defines transform_fn"),
        ("from helpers import input_fn\n", "it imports input_fn"),
        ("from helpers import decode as transform_fn\n", "it imports transform_fn"),
        ("import helpers\ninput_fn = helpers.decode\n", "it names input_fn"),
        ("if True:\n    def input_fn(b, c):\n        pass\n", "it defines input_fn"),
        ("from helpers import *\n", "it imports names with *"),
        ("globals()['input' + '_fn'] = print\n", "it calls globals()"),
        ("def (:\n", "its source cannot be parsed (SyntaxError)"),
    ],
)
def test_script_binds_input_handler(source, reason):
    assert content.script_binds_input_handler(source) == reason


def test_default_input_handler_reads_the_code_archive(tmp_path):
    code = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(code, "w:gz") as archive:
        for name, text in (("plain.py", "def model_fn(d):\n    pass\n"), ("own.py", OWN_INPUT)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert content.default_input_handler(code, "plain.py", "scikit-learn") is None
    assert "own.py: it defines input_fn" in str(
        content.default_input_handler(code, "own.py", "scikit-learn")
    )
    assert "not in the model's code" in str(
        content.default_input_handler(code, "gone.py", "scikit-learn")
    )
    assert "xgboost" in str(content.default_input_handler(code, "plain.py", "xgboost"))
    assert "built-in" in str(
        content.default_input_handler(code, "plain.py", "xgboost", builtin=True)
    )
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "plain.py").write_text("def model_fn(d):\n    pass\n")
    assert content.default_input_handler(folder, "plain.py", "scikit-learn") is None


# -- the array the model gets ---------------------------------------------------------


def _batch(rows: int, columns: int) -> pa.RecordBatch:
    rng = np.random.default_rng(rows * 10 + columns)
    arrays = [
        pa.array(rng.integers(-(2**62), 2**62, rows)),
        pa.array(rng.normal(size=rows) * 10.0 ** rng.integers(-40, 40, rows)),
        pa.array(rng.normal(size=rows).astype(np.float32)),
        pa.array(
            [Decimal(f"{v:.6f}") for v in rng.normal(size=rows) * 1000], pa.decimal128(18, 6)
        ),
        pa.array(rng.integers(-1000, 1000, rows).astype(np.int32)),
    ][:columns]
    return pa.RecordBatch.from_arrays(arrays, names=[f"c{i}" for i in range(columns)])


@pytest.mark.parametrize(("rows", "columns"), [(500, 5), (1, 5), (300, 1), (1, 1), (2, 2)])
def test_npy_holds_the_array_csv_decodes_to(rows, columns):
    """The default input_fn's array from the npy body is the one from the CSV body:
    same dtype, same shape (the squeeze included), same bits."""
    batch = _batch(rows, columns)
    csv_body = codec.encode(batch, codec.CSV).decode("utf-8")
    npy_body = codec.encode(batch, codec.NPY, like_csv=True)
    from_csv = service.default_input_fn(csv_body, codec.CSV)
    from_npy = service.default_input_fn(npy_body, codec.NPY)
    assert from_npy.dtype == from_csv.dtype == np.float32
    assert from_npy.shape == from_csv.shape
    assert from_npy.tobytes() == from_csv.tobytes()
    # float64 npy (what x-npy sends when asked for explicitly) would be another array
    assert service.default_input_fn(codec.encode(batch, codec.NPY), codec.NPY).dtype != (
        np.float32
    )
