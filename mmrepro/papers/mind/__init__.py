"""MIND (Modality-INformed knowledge Distillation, Guerra-Manzanares et al.): the chapter's experiments on
AV digits and PBC.

* :mod:`~mmrepro.papers.mind.objectives`: MIND's objective (eq. 7) and the TS and MKE baselines (Table A4).
* :mod:`~mmrepro.papers.mind.problems`: two-modality problems with a paired student set and larger unimodal sets.
* :mod:`~mmrepro.papers.mind.teachers`: unimodal teacher candidates, cached by configuration hash; top-k ensembles.
* :mod:`~mmrepro.papers.mind.students`: baselines, ablation settings, random search, ω study, evaluation.
* :mod:`~mmrepro.papers.mind.evidence`: the two-stage bootstrap over seeds and test rows.
* :mod:`~mmrepro.papers.mind.results`: one problem end to end; :mod:`~mmrepro.papers.mind.report` its tables and
  figures; :mod:`~mmrepro.papers.mind.findings` the paper's claims; :mod:`~mmrepro.papers.mind.plan` its cost.
"""
