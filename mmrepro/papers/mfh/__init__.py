"""The Modality Focusing Hypothesis (Xue et al., "The Modality Focusing Hypothesis: Towards Understanding
Crossmodal Knowledge Distillation", ICLR 2023): the chapter's theory, synthetic studies and real-data checks.

* :mod:`~mmrepro.papers.mfh.generator`: the multi-view data generator of Sec. 4 (Figures 2-3, Table 2).
* :mod:`~mmrepro.papers.mfh.theory` and :mod:`~mmrepro.papers.mfh.theorem`: Lemma 1, Theorem 1 and its trials.
* :mod:`~mmrepro.papers.mfh.kd`: batches of linear students trained with eq. 1; :mod:`~mmrepro.papers.mfh.distillation`
  the synthetic distillation studies; :mod:`~mmrepro.papers.mfh.ranking` Algorithm 1.
* :mod:`~mmrepro.papers.mfh.realdata` and :mod:`~mmrepro.papers.mfh.case_study`: the real-data checks and case study.
* :mod:`~mmrepro.papers.mfh.studies`: the chapter's synthetic experiments and numerical checks, by the paper's names.
* :mod:`~mmrepro.papers.mfh.report` (the chapter's tables and figures) and :mod:`~mmrepro.papers.mfh.findings`
  (the paper's numbers and the chapter's claims), with the intervals of :mod:`~mmrepro.papers.mfh.evidence`.
* :mod:`~mmrepro.papers.mfh.plan`: what ``mmrepro plan mfh`` counts.
"""
