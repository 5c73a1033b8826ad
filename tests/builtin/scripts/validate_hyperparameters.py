"""Run inside an XGBoost runtime: validate hyperparameter sets with the algorithm's rules.

Usage: python validate_hyperparameters.py INSIDE_DIR CASES.json -> prints JSON, one entry
per case: {"ok": validated} or {"error": class name, "message": text}.
"""

import json
import sys


def main(inside, path):
    sys.path.insert(0, inside)
    from fedsage_xgboost import errors, hyperparameters

    with open(path) as handle:
        cases = json.load(handle)
    out = []
    for case in cases:
        try:
            validated = hyperparameters.validate(case)
            out.append(
                {
                    "ok": dict(
                        (k, list(v) if isinstance(v, tuple) else v) for k, v in validated.items()
                    )
                }
            )
        except errors.AlgorithmToolkitError as exc:
            out.append({"error": type(exc).__name__, "message": str(exc)})
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
