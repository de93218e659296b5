"""
=================================================
Decision boundaries of small MLPs on 2-D problems
=================================================

Two classic two-dimensional problems that no straight line separates: interleaved half
moons and concentric circles. The same small network (two hidden layers of 16 units) is
trained with each hidden activation that :class:`sknet.MLPClassifier` offers, and
scikit-learn's :class:`~sklearn.inspection.DecisionBoundaryDisplay` draws the predicted
probability of the second class over the plane.

With ``activation="identity"`` the network is a composition of linear maps, hence a
linear model: its boundary is a straight line and it fails on both problems. The
non-linear activations bend the boundary around the data.
"""

# %%
# Data and models
# ---------------
import time
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import make_circles, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknet import MLPClassifier

datasets = {
    "moons": make_moons(n_samples=300, noise=0.25, random_state=0),
    "circles": make_circles(n_samples=300, noise=0.1, factor=0.5, random_state=1),
}
activations = ["identity", "logistic", "tanh", "relu"]

# %%
# Training and plotting
# ---------------------
# Each model is a pipeline that standardises the two features, then trains the network
# with Adam (one mini-batch of all 225 training points per epoch) for at most 1,000
# epochs. With the logistic activation the loss first sits on a long plateau, which the
# default stopping rule (loss improving by less than ``tol=1e-4`` for 10 epochs) takes
# for convergence; a smaller ``tol`` and a longer patience let every run get past it.
# We print the test accuracy (a quarter of the points, held out) and the fit time.
fig, axes = plt.subplots(
    len(datasets),
    len(activations),
    figsize=(13, 6.5),
    sharex="row",
    sharey="row",
    layout="constrained",
)
for row, (data_name, (X, y)) in zip(axes, datasets.items()):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    for ax, activation in zip(row, activations):
        clf = make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(16, 16),
                activation=activation,
                learning_rate_init=1e-2,
                max_iter=1000,
                tol=1e-6,
                n_iter_no_change=50,
                random_state=0,
            ),
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            # a fixed budget of epochs, chosen for this example
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_train, y_train)
        fit_time = time.perf_counter() - start
        score = clf.score(X_test, y_test)
        print(
            f"{data_name:>8}, activation={activation!r:<11} test accuracy {score:.3f}, "
            f"fit time {fit_time:.2f} s ({clf[-1].n_iter_} epochs)"
        )

        DecisionBoundaryDisplay.from_estimator(
            clf,
            X,
            response_method="predict_proba",
            grid_resolution=150,
            ax=ax,
            cmap="RdBu",
            alpha=0.7,
            vmin=0,
            vmax=1,
        )
        ax.scatter(
            X_train[:, 0],
            X_train[:, 1],
            c=y_train,
            cmap="RdBu",
            edgecolors="k",
            s=18,
            linewidths=0.5,
        )
        ax.scatter(
            X_test[:, 0],
            X_test[:, 1],
            c=y_test,
            cmap="RdBu",
            edgecolors="k",
            s=18,
            linewidths=0.5,
            marker="s",
        )
        ax.set_title(f"{data_name}, {activation}: test accuracy {score:.2f}", fontsize=10)
        ax.set(xlabel="", ylabel="")
fig.suptitle(
    "Predicted probability of the blue class (circles: training points, squares: test points)"
)
plt.show()
