"""Jobs and endpoints on the default 0.23-1 runtime: the image's own Python and libraries."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

from fedsage import DwcSagemaker
from fedsage.errors import ConfigurationError

OLD_APIS = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.preprocessing import OneHotEncoder

    if __name__ == "__main__":
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        AgglomerativeClustering(n_clusters=2, affinity="euclidean").fit(df[[1, 2]])
        encoder = OneHotEncoder(sparse=False).fit(df[[0]].astype(str))
        names = list(encoder.get_feature_names())
        extra = sorted(os.listdir(os.environ["SM_CHANNEL_VALIDATION"]))
        report = {"python": "%d.%d" % sys.version_info[:2], "sklearn": sklearn.__version__,
                  "names": names, "validation": extra, "channels": os.environ["SM_CHANNELS"]}
        with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.json"), "w") as out:
            json_text = __import__("json").dumps(report)
            out.write(json_text)
    """
)

CONTAINERS_SCRIPT = textwrap.dedent(
    """
    import json
    import os

    import joblib
    import numpy as np
    import pandas as pd
    from sagemaker_containers.beta.framework import encoders, worker
    from sklearn.linear_model import LinearRegression


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def input_fn(body, content_type):
        return np.array(json.loads(body)["rows"], dtype=float)


    def output_fn(prediction, accept):
        body = json.dumps({"predictions": prediction.tolist()})
        return worker.Response(response=body, status=200, mimetype="application/json")


    if __name__ == "__main__":
        import sagemaker_training  # noqa: F401  (the image has it)
        df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
        model = LinearRegression().fit(df[[1]], df[0])
        joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
        print(encoders.__name__)
    """
)

FRAME = pd.DataFrame({"y": [1.0, 3.0, 5.0, 7.0], "x": [0.0, 1.0, 2.0, 3.0], "z": [1, 0, 1, 0]})


@pytest.fixture()
def dwc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return DwcSagemaker(prefix="rt")


def test_old_api_script_trains_unchanged_on_the_default_runtime(dwc, tmp_path):
    (tmp_path / "train.py").write_text(OLD_APIS)
    folder = tmp_path / "val"
    folder.mkdir()
    (folder / "holdout.csv").write_text("1,2,3\n")
    handle = dwc.train_sklearn_model(
        FRAME, train_script="train.py", channels={"validation": f"file://{folder}"},
        download_output=True, logs="None",
    )
    report = json.loads((tmp_path / handle.job_name / "output" / "report.json").read_text())
    assert report["python"] == "3.7"
    assert report["sklearn"] == "0.23.2"
    assert report["names"] == ["x0_1.0", "x0_3.0", "x0_5.0", "x0_7.0"]
    assert report["validation"] == ["holdout.csv"]
    assert report["channels"] == '["train","validation"]'
    described = handle.describe()
    assert described["Fedsage"]["Runtime"]["framework_version"] == "0.23-1"
    assert described["Fedsage"]["Runtime"]["python_version"].startswith("3.7.")


def test_sagemaker_containers_script_trains_and_serves(dwc, tmp_path):
    (tmp_path / "train.py").write_text(CONTAINERS_SCRIPT)
    handle = dwc.train_sklearn_model(FRAME, train_script="train.py", wait=True, logs="None")
    name = dwc.deploy(handle, 1, "local")
    try:
        answer = dwc.predict(name, json.dumps({"rows": [[4.0]]}), "application/json")
        assert json.loads(answer) == {"predictions": pytest.approx([9.0])}
        (endpoint,) = [e for e in dwc._backend.list_endpoints() if e["EndpointName"] == name]
        assert endpoint["Local"]["runtime"]["FrameworkVersion"] == "0.23-1"
    finally:
        dwc.delete_endpoint(name)


@pytest.mark.parametrize(
    ("channels", "match"),
    [
        ({"train": FRAME}, "already fill"),
        ({"bad name": FRAME}, "channel name"),
        ({"extra": 5}, r"channels\['extra'\]"),
        ([FRAME], "must be a dict"),
    ],
)
def test_channel_errors(dwc, tmp_path, channels, match):
    (tmp_path / "train.py").write_text("pass\n")
    with pytest.raises(ConfigurationError, match=match):
        dwc.train_sklearn_model(FRAME, train_script="train.py", channels=channels)
