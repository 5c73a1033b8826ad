"""Backends: ``local`` and ``aws``, each composing storage, training and serving."""

from .base import Backend, TrainingRequest

__all__ = ["Backend", "TrainingRequest"]
