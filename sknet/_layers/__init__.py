"""Layers: shapes, initialisation and parameter views; the arithmetic is in kernels."""

from .base import Layer
from .conv import Conv, Pool
from .dense import Activation, Dense, Dropout, Flatten
from .recurrent import Recurrent

__all__ = ["Layer", "Activation", "Conv", "Dense", "Dropout", "Flatten", "Pool", "Recurrent"]
