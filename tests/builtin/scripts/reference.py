"""Run inside an XGBoost runtime: xgboost's own train + predict, for comparison.

Usage: python reference.py SPEC.json -> prints JSON.  SPEC: {"params": {...}, "num_round": n,
"train": [[label, x...], ...], "validation": [...] or null, "predict": [[x...], ...],
"early_stopping": {"rounds": r, "metric": m, "maximize": bool} or null,
"model": path of a model file to predict with as well (optional)}.
"""

import json
import sys

import numpy as np
import xgboost as xgb


def main(path):
    with open(path) as handle:
        spec = json.load(handle)
    train = np.array(spec["train"], dtype=np.float32)
    dtrain = xgb.DMatrix(train[:, 1:], label=train[:, 0])
    evals = [(dtrain, "train")]
    if spec.get("validation"):
        val = np.array(spec["validation"], dtype=np.float32)
        evals.append((xgb.DMatrix(val[:, 1:], label=val[:, 0]), "validation"))
    callbacks = []
    stop = spec.get("early_stopping")
    if stop:
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=stop["rounds"],
                data_name="validation",
                metric_name=stop["metric"],
                maximize=stop["maximize"],
                save_best=True,
            )
        )
    result = {}
    booster = xgb.train(
        spec["params"],
        dtrain,
        num_boost_round=spec["num_round"],
        evals=evals,
        evals_result=result,
        callbacks=callbacks,
        verbose_eval=False,
    )
    features = xgb.DMatrix(np.array(spec["predict"], dtype=np.float32))
    out = {
        "predictions": booster.predict(features).tolist(),
        "evals_result": result,
        "rounds": booster.num_boosted_rounds(),
    }
    if spec.get("model"):
        trained = xgb.Booster()
        trained.load_model(spec["model"])
        out["model_predictions"] = trained.predict(features).tolist()
        out["model_rounds"] = trained.num_boosted_rounds()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
