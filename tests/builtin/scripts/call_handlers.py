"""Run inside an XGBoost runtime: call the algorithm's inference handlers directly.

Usage: python call_handlers.py INSIDE_DIR MODEL_DIR REQUESTS.json -> prints JSON: one
{"status", "content_type", "body" (base64)} per request, after {"model_error": ...} when
model_fn fails.  A request is {"body" (base64), "content_type", "accept", "env": {...}}.
"""

import base64
import json
import os
import sys


def main(inside, model_dir, requests_path):
    sys.path.insert(0, inside)
    import xgboost_algorithm_serve as handlers

    with open(requests_path) as handle:
        requests = json.load(handle)
    out = {"execution_parameters": handlers.execution_parameters_fn(), "replies": []}
    try:
        model = handlers.model_fn(model_dir)
    except Exception as exc:  # reported to the test
        out["model_error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out))
        return
    out["objective"] = model.objective
    for request in requests:
        saved = dict(os.environ)
        os.environ.update(request.get("env", {}))
        try:
            reply = handlers.transform_fn(
                model,
                base64.b64decode(request["body"]),
                request.get("content_type"),
                request.get("accept"),
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
        out["replies"].append(
            {
                "status": reply.status_code,
                "content_type": reply.headers["Content-Type"],
                "body": base64.b64encode(reply.get_data()).decode("ascii"),
            }
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
