"""Balancing methods for multimodal joint training that MILES is compared with (OGM/OGM-GE, G-Blend, MSLR,
MSES), all acting through :func:`mmrepro.core.trainer.fit`; MILES itself is :mod:`mmrepro.papers.miles`."""
from mmrepro.core.balancing.base import BalancingMethod
from mmrepro.core.balancing.gblend import GBlend, gblend_weights
from mmrepro.core.balancing.mses import MSES
from mmrepro.core.balancing.mslr import MSLR
from mmrepro.core.balancing.ogm import OGM, ogm_coefficients

__all__ = ["BalancingMethod", "MSES", "MSLR", "OGM", "ogm_coefficients", "GBlend", "gblend_weights"]
