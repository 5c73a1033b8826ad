"""Scoring: models applied to many records (batch transform, warehouse scoring)."""
