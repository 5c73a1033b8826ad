"""Committed runtime specs (``<version>.json``) and the tool that produces them (``lock``)."""
