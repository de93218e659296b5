"""Pure numba kernels: forward and backward side by side.

Modules here import only numpy, numba, math and :mod:`sknet._config`.
"""
