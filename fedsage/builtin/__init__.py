"""SageMaker's built-in algorithms, run locally inside the image's own runtime.

Today: XGBoost algorithm mode (:mod:`fedsage.builtin.xgboost`).  The algorithm itself,
its training program and its inference handlers, live in ``_inside/`` and run under the
XGBoost runtime's interpreter (old-Python syntax, the runtime's packages only); this
package is the host side: where those files are, how a job or an endpoint starts them,
and how hyperparameters are written for them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["INSIDE"]

INSIDE = Path(__file__).resolve().with_name("_inside")
