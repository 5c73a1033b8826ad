"""Batch scoring: a table, query, DataFrame or file -> the model's own server -> a table or file."""
