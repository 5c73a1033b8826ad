"""Code that runs inside an XGBoost runtime (see ``fedsage_xgboost``)."""
