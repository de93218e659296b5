"""Monthly atmospheric CO2 at Mauna Loa, 1958-2001: a small real series shipped with sknet."""

from importlib import resources

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_co2"]

_CSV = "co2_mauna_loa_monthly.csv"


def _read_csv():
    """Header comment lines, months, values and week counts of the shipped CSV."""
    text = resources.files("sknet.datasets").joinpath("data", _CSV).read_text("utf-8")
    lines = text.splitlines()
    comments = [line[1:].strip() for line in lines if line.startswith("#")]
    rows = [line.split(",") for line in lines if line and not line.startswith("#")]
    if rows[0] != ["month", "co2", "n_weeks"]:  # pragma: no cover - guards the shipped file
        raise ValueError(f"unexpected header {rows[0]} in {_CSV}")
    rows = rows[1:]
    months = np.array([r[0] for r in rows], dtype="datetime64[M]")
    co2 = np.array([float(r[1]) for r in rows])
    n_weeks = np.array([int(r[2]) for r in rows])
    return comments, months, co2, n_weeks


def load_co2(*, return_X_y=False):
    """Load monthly mean atmospheric CO2 at Mauna Loa Observatory, March 1958 - December 2001.

    A real, public time series of 526 months, shipped inside sknet as a small CSV (nothing is
    downloaded): a rising trend with a yearly cycle of a few ppmv, for forecasting examples.

    Source: the Scripps Institution of Oceanography CO2 program (C. D. Keeling and
    T. P. Whorf), weekly Mauna Loa values distributed by the Carbon Dioxide Information
    Analysis Center (CDIAC, Oak Ridge National Laboratory, U.S. Department of Energy) and
    redistributed by statsmodels as ``statsmodels.datasets.co2``. Licence: public domain
    (as stated in statsmodels' dataset notes). The monthly values are the means of the
    weekly values dated in each month; the five months without any weekly value
    (1958-06, 1958-10, 1964-02 to 1964-04) are linear interpolations of their neighbours,
    marked by ``n_weeks == 0``. The CSV's header comment gives the exact derivation and the
    citation.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(months, co2)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields:

        co2 : ndarray of shape (526,), float64
            Monthly mean CO2 mole fraction, ppmv.
        months : ndarray of shape (526,), dtype ``datetime64[M]``
            The month of each value, 1958-03 to 2001-12, consecutive.
        n_weeks : ndarray of shape (526,), int
            Number of weekly values averaged into each month (0: interpolated).
        DESCR : str
            Source, licence and derivation (the CSV's header comment).
    (months, co2) : tuple of ndarray
        If ``return_X_y`` is True.

    Examples
    --------
    >>> from sknet.datasets import load_co2
    >>> data = load_co2()
    >>> data.co2.shape, str(data.months[0]), str(data.months[-1])
    ((526,), '1958-03', '2001-12')
    >>> bool(data.co2[-12:].mean() > data.co2[:12].mean() + 50)   # the trend, in ppmv
    True
    """
    comments, months, co2, n_weeks = _read_csv()
    if return_X_y:
        return months, co2
    return Bunch(co2=co2, months=months, n_weeks=n_weeks, DESCR="\n".join(comments))
