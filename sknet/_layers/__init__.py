"""Layers: shapes, initialisation and parameter views; the arithmetic is in kernels."""

from .base import LAYER_CLASSES, Layer, walk_layers
from .conv import Conv, GlobalPool, Pool
from .dense import Activation, Dense, Dropout, Flatten
from .norm import BatchNorm
from .recurrent import Recurrent
from .residual import Residual

__all__ = [
    "LAYER_CLASSES",
    "Layer",
    "Activation",
    "BatchNorm",
    "Conv",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalPool",
    "Pool",
    "Recurrent",
    "Residual",
    "walk_layers",
]
