"""MIND (Modality-INformed knowledge Distillation): the chapter's experiments on AV digits and PBC.

* :mod:`mmrepro.mind.problems`: two-modality problems with a paired student set and larger unimodal sets.
* :mod:`mmrepro.mind.teachers`: unimodal teacher candidates, cached by configuration hash; top-k ensembles.
* :mod:`mmrepro.mind.experiments`: baselines (Table A4), ablation settings, random search, ω study, evaluation.
* :mod:`mmrepro.mind.chapter`: one problem end to end, its tables, figure and claims.
"""
