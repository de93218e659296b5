"""Layers: shapes, initialisation and parameter views; the arithmetic is in kernels."""

from .base import Layer
from .dense import Activation, Dense, Dropout, Flatten
from .recurrent import Recurrent

__all__ = ["Layer", "Activation", "Dense", "Dropout", "Flatten", "Recurrent"]
