"""What a new user trips over: lazy submodules, image layouts, pretrained models on the
rows the data loaders return, summaries and saving of pipelines."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import sknet
from sknet import ConvNetClassifier, NetworkClassifier
from sknet import layers as L

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(conv_filters=(2,), hidden_layer_sizes=(4,), max_iter=2, random_state=0)


def _run(code):
    """Run ``code`` in a fresh interpreter (a clean ``sys.modules``); return its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


# -- lazy submodules --------------------------------------------------------------------
def test_submodules_load_on_first_use_without_optional_dependencies():
    out = _run(
        "import sys, sknet\n"
        "heavy = ('torch', 'dask', 'sknet.timeseries', 'sknet.pretrained', 'sknet.datasets',"
        " 'sknet.torch_interop', 'sknet.dask')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(sknet.timeseries.__name__, sknet.pretrained.__name__, sknet.datasets.__name__)\n"
        "print('torch' in sys.modules, 'dask' in sys.modules)\n"
        "print(all(n in dir(sknet) for n in ('timeseries', 'pretrained', 'datasets')))\n"
    )
    assert out.splitlines() == [
        "[]",
        "sknet.timeseries sknet.pretrained sknet.datasets",
        "False False",
        "True",
    ]


def test_every_listed_submodule_is_either_importable_or_a_clear_attribute_error():
    for name in sknet._SUBMODULES:
        if name in ("torch_interop", "dask"):  # their optional dependency may be missing
            continue
        if sknet._has_submodule(name):
            assert getattr(sknet, name).__name__ == f"sknet.{name}"
            assert name in dir(sknet)
        else:
            with pytest.raises(AttributeError, match=f"no sknet.{name} submodule"):
                getattr(sknet, name)
            assert name not in dir(sknet)
    with pytest.raises(AttributeError, match="has no attribute 'not_a_module'"):
        sknet.not_a_module  # noqa: B018
    assert not hasattr(sknet, "kernel")


# -- image layouts ----------------------------------------------------------------------
def _images(rng, shape):
    X = rng.random(shape)
    return X, np.arange(len(X)) % 2


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_images_warn_with_both_readings(rng, channels):
    X, y = _images(rng, (12, 8, 8, channels))
    with pytest.warns(UserWarning, match="channels-last") as record:
        ConvNetClassifier(**SMALL).fit(X, y)
    (message,) = [str(w.message) for w in record if "channels-last" in str(w.message)]
    assert f"8 channels of 8x{channels}-pixel images" in message
    assert f"X.transpose(0, 3, 1, 2), of shape (12, {channels}, 8, 8)" in message
    assert f"input_shape=(8, 8, {channels})" in message
    with pytest.warns(UserWarning, match="channels-last"):
        NetworkClassifier(layers=[L.Conv2D(2, 3), L.Flatten()], max_iter=2).fit(X, y)


def test_stated_or_unambiguous_layouts_do_not_warn(rng):
    X, y = _images(rng, (12, 8, 8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        # the stated reading, the transposed images, small square images, RGB first
        ConvNetClassifier(input_shape=(8, 8, 1), **SMALL).fit(X, y)
        ConvNetClassifier(**SMALL).fit(X.transpose(0, 3, 1, 2), y)
        ConvNetClassifier(**SMALL).fit(rng.random((12, 3, 8, 8)), y)
        ConvNetClassifier(**SMALL).fit(rng.random((12, 4, 4, 4)), y)
        # signals stated as 3-D (n, C, L); few-channel signals as flat rows
        ConvNetClassifier(input_shape=(8, 8), **SMALL).fit(X.reshape(12, 8, 8), y)
        ConvNetClassifier(input_shape=(2, 32), **SMALL).fit(X.reshape(12, 64), y)
        ConvNetClassifier(input_shape=(12, 30), **SMALL).fit(rng.random((12, 360)), y)


def test_image_sized_input_shape_for_rows_warns(rng):
    X, y = _images(rng, (12, 64))
    with pytest.warns(UserWarning, match=r"8-channel signals of length 8") as record:
        clf = ConvNetClassifier(input_shape=(8, 8), **SMALL).fit(X, y)
    message = next(str(w.message) for w in record if "8-channel" in str(w.message))
    assert "input_shape=(1, 8, 8)" in message and "(n, 8, 8)" in message
    assert clf.input_shape_ == (8, 8)  # the reading taken is the documented one


# -- flat rows for a network fitted on images ---------------------------------------------
def test_convnet_fitted_on_images_takes_flat_rows(rng):
    X, y = _images(rng, (12, 1, 8, 8))
    for clf in (
        ConvNetClassifier(**SMALL),
        NetworkClassifier(layers=[L.Conv2D(2, 3), L.Flatten()], max_iter=2, random_state=0),
    ):
        clf.fit(X, y)
        flat = X.reshape(12, 64)
        np.testing.assert_array_equal(clf.predict_proba(flat), clf.predict_proba(X))
        np.testing.assert_array_equal(
            clf.predict_proba(X[:, 0]), clf.predict_proba(X)
        )  # (n, H, W) one-channel images
        with pytest.raises(ValueError, match="features per row|per-sample shape"):
            clf.predict(flat[:, :60])
        assert flat.shape == (12, 64)  # the user's array is not modified


def test_pretrained_mnist_convnet_takes_the_rows_load_mnist_returns():
    pretrained = pytest.importorskip("sknet.pretrained")
    clf = pretrained.load("mnist_convnet")
    rng = np.random.default_rng(0)
    images = rng.random((5, 1, 28, 28)).astype(np.float32)
    rows = images.reshape(5, 784)  # sknet.datasets.load_mnist's default layout
    np.testing.assert_array_equal(clf.predict_proba(rows), clf.predict_proba(images))


# -- the HTML diagram links sknet's API pages ---------------------------------------------
def test_html_diagram_links_the_sknet_api_page():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils import estimator_html_repr

    for est in (sknet.MLPClassifier(), sknet.ConvNetRegressor(), sknet.NetworkClassifier()):
        name = type(est).__name__
        assert name in sknet.__all__  # its API page is sknet.<name> (docs/conf.py)
        assert est._get_doc_link().endswith(f"gen_modules/sknet.{name}.html")
    html = estimator_html_repr(make_pipeline(StandardScaler(), sknet.MLPClassifier()))
    assert 'href="../gen_modules/sknet.MLPClassifier.html"' in html
    assert "sklearn.preprocessing.StandardScaler.html" in html  # scikit-learn's own links
