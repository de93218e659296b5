"""Slow, obviously-correct NumPy references for batch normalization and global pooling.

Explicit loops over channels (and samples for pooling), all in float64, on the (n, C, L)
view the kernels use.
"""

import numpy as np


def batchnorm_train(X, gamma, beta, running_mean, running_var, momentum, eps):
    """Training forward of one batch X (n, C, L).

    Returns Y (n, C, L), the batch mean and inv_std (C,) and the updated running mean and
    variance (C,) (PyTorch's convention: the running variance takes the unbiased variance).
    """
    X = np.asarray(X, dtype=np.float64)
    n, C, L = X.shape
    m = n * L
    Y = np.empty_like(X)
    mean, inv_std = np.empty(C), np.empty(C)
    new_mean, new_var = np.empty(C), np.empty(C)
    for c in range(C):
        x = X[:, c, :]
        mu = x.sum() / m
        var = ((x - mu) ** 2).sum() / m
        mean[c], inv_std[c] = mu, 1.0 / np.sqrt(var + eps)
        Y[:, c, :] = gamma[c] * (x - mu) * inv_std[c] + beta[c]
        new_mean[c] = (1 - momentum) * running_mean[c] + momentum * mu
        new_var[c] = (1 - momentum) * running_var[c] + momentum * var * m / (m - 1)
    return Y, mean, inv_std, new_mean, new_var


def batchnorm_inference(X, gamma, beta, running_mean, running_var, eps):
    """Y = gamma * (X - running_mean) / sqrt(running_var + eps) + beta, per channel."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.empty_like(X)
    for c in range(X.shape[1]):
        std = np.sqrt(np.float64(running_var[c]) + eps)
        Y[:, c, :] = gamma[c] * (X[:, c, :] - running_mean[c]) / std + beta[c]
    return Y


def batchnorm_backward(X, dY, gamma, eps):
    """dX, dgamma, dbeta of the training forward, from the textbook formulas."""
    X, dY = np.asarray(X, dtype=np.float64), np.asarray(dY, dtype=np.float64)
    n, C, L = X.shape
    m = n * L
    dX, dgamma, dbeta = np.empty_like(X), np.empty(C), np.empty(C)
    for c in range(C):
        x, dy = X[:, c, :], dY[:, c, :]
        mu = x.mean()
        inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean() + eps)
        x_hat = (x - mu) * inv_std
        dgamma[c] = (dy * x_hat).sum()
        dbeta[c] = dy.sum()
        dX[:, c, :] = gamma[c] * inv_std / m * (m * dy - dbeta[c] - x_hat * dgamma[c])
    return dX, dgamma, dbeta


def global_avgpool(X):
    """Y[s, c] = mean of X[s, c, :]."""
    n, C, _ = X.shape
    Y = np.empty((n, C))
    for s in range(n):
        for c in range(C):
            Y[s, c] = np.mean(np.asarray(X[s, c], dtype=np.float64))
    return Y


def global_maxpool(X):
    """Y[s, c] = max of X[s, c, :], and the first index of that maximum."""
    n, C, _ = X.shape
    Y, A = np.empty((n, C)), np.empty((n, C), dtype=np.int64)
    for s in range(n):
        for c in range(C):
            A[s, c] = int(np.argmax(X[s, c]))  # numpy's argmax: the first maximum
            Y[s, c] = X[s, c, A[s, c]]
    return Y, A
