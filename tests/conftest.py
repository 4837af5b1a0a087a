import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def mpl25():
    """The published multi-power-law split of the 25M model: (train, test) curves."""
    from lrtune.datasets import mpl_split

    return mpl_split("25M")
