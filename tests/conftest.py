import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# the laws fit small problems: threaded BLAS only adds contention on small machines
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def mpl25():
    """The published multi-power-law split of the 25M model: (train, test) curves."""
    from lrtune.datasets import mpl_split

    return mpl_split("25M")
