"""Program of an XGBoost algorithm-mode training job (fedsage's stand-in for the image's).

Run it with the XGBoost runtime's interpreter, ``<python> /path/to/xgboost_algorithm_train.py``;
its folder then comes first on ``sys.path``, so ``fedsage_xgboost`` imports.  See
``fedsage_xgboost.train`` for what it reads and writes.
"""

from fedsage_xgboost.train import run

if __name__ == "__main__":
    run()
