"""Balancing methods for multimodal joint training, all acting through :func:`mmrepro.trainer.fit`."""
from mmrepro.balancing.base import BalancingMethod
from mmrepro.balancing.gblend import GBlend, gblend_weights
from mmrepro.balancing.miles import MILES, miles_decision, miles_decision_pairwise
from mmrepro.balancing.mses import MSES
from mmrepro.balancing.mslr import MSLR
from mmrepro.balancing.ogm import OGM, ogm_coefficients

__all__ = ["BalancingMethod", "MILES", "miles_decision", "miles_decision_pairwise", "MSES", "MSLR", "OGM",
           "ogm_coefficients", "GBlend", "gblend_weights"]
