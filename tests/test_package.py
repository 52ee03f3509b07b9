"""The package's public surface."""
import importlib

import pytest

import mmrepro
from mmrepro import _EXPORTS


@pytest.mark.parametrize("name", mmrepro.__all__)
def test_every_public_name_is_the_object_of_its_module(name):
    if name == "__version__":
        from mmrepro.common.version import __version__

        assert mmrepro.__version__ == __version__ and __version__.count(".") >= 2
        return
    # the lazy export is the very object its module defines (not a stand-in, not None)
    assert getattr(mmrepro, name) is getattr(importlib.import_module(_EXPORTS[name]), name)
    assert getattr(mmrepro, name).__name__ == name


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        mmrepro.nope
