"""MILES (Guerra-Manzanares & Shamout, "MILES: Modality-Informed Learning ratE Scheduler for Balancing
Multimodal Learning"): the scheduler and the chapter's experimental setup.

* :mod:`~mmrepro.papers.miles.scheduler`: Algorithm 1 (eqs. 4-5 through :func:`mmrepro.core.metrics.conditional_utilization`,
  which MIND's ω study shares).
* :mod:`~mmrepro.papers.miles.setup`: the joint-fusion networks, the balancing methods compared and their search spaces.
* :mod:`~mmrepro.papers.miles.plan`: what ``mmrepro plan miles`` counts.
"""
