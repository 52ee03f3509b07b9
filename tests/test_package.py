"""The package's public surface."""
import pytest

import mmrepro


@pytest.mark.parametrize("name", mmrepro.__all__)
def test_every_public_name_imports(name):
    assert getattr(mmrepro, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        mmrepro.nope
