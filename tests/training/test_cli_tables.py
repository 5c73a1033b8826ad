"""In an 80-column terminal, job names and endpoint URLs are printed whole (they are what
people copy into the next command); --output json gives the whole records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _cli import invoke

from fedsage import DwcSagemaker

SCRIPT = """
import os
def model_fn(model_dir):
    return 1
def predict_fn(data, model):
    return data
if __name__ == "__main__":
    open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write("m")
"""


def test_names_and_urls_are_never_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    (tmp_path / "train.py").write_text(SCRIPT)
    dwc = DwcSagemaker(prefix="tables")
    handle = dwc.train_sklearn_model(
        pd.DataFrame({"a": [1]}),
        train_script="train.py",
        base_job_name="fedsage-demo-iris-with-a-long-base-name",
        framework_version="host",
        wait=True,
        logs="None",
    )
    endpoint = dwc.deploy(handle, 1, "local", cleanup_resources=False)
    try:
        jobs = invoke(["jobs", "list"])
        assert jobs.exit_code == 0, jobs.output
        assert handle.job_name in jobs.output
        endpoints = invoke(["endpoints", "list"])
        assert endpoints.exit_code == 0, endpoints.output
        url = dwc._backend.describe_endpoint(endpoint)["Local"]["url"]
        assert endpoint in endpoints.output and url in endpoints.output
        whole = invoke(["jobs", "list", "--output", "json"])
        (record,) = json.loads(whole.output)
        assert record["TrainingJobName"] == handle.job_name
        assert record["Fedsage"]["Program"] == "train.py"
        listed = json.loads(invoke(["endpoints", "list", "-o", "json"]).output)
        assert [e["EndpointName"] for e in listed] == [endpoint]
    finally:
        dwc.delete_endpoint(endpoint)
