"""Activation codes, shared by :mod:`kernels.activations` (which exports them) and
:mod:`kernels.dense` (whose block function runs every activation's loops): a module of
its own so that neither imports the other's dependencies in a cycle."""

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3

ACTIVATIONS = {"identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH, "relu": RELU}
