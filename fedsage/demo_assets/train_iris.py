"""A SageMaker scikit-learn script-mode training script (unchanged on SageMaker).

Reads the ``train`` and ``test`` channels (CSV without header, label first), fits a
classifier, reports accuracy, and saves the model for serving with ``model_fn``.
"""

import argparse
import json
import os

import joblib
import pandas as pd
from sklearn.ensemble import RandomForestClassifier


def _read(channel):
    folder = os.environ["SM_CHANNEL_" + channel.upper()]
    files = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    return pd.concat([pd.read_csv(path, header=None) for path in files])


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=50)
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    args, _ = parser.parse_known_args()

    train = _read("train")
    model = RandomForestClassifier(
        n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=0
    )
    model.fit(train.iloc[:, 1:], train.iloc[:, 0])
    metrics = {"train_accuracy": float(model.score(train.iloc[:, 1:], train.iloc[:, 0]))}
    if "SM_CHANNEL_TEST" in os.environ:
        test = _read("test")
        metrics["test_accuracy"] = float(model.score(test.iloc[:, 1:], test.iloc[:, 0]))
    print("metrics: " + json.dumps(metrics, sort_keys=True))

    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as out:
        json.dump(metrics, out)
