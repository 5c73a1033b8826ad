"""Batch scoring: a table, query, DataFrame or file -> the model's own server -> a table or file.

Also SageMaker's Batch Transform surface in local mode (:mod:`fedsage.scoring.transformer`).
"""
