"""Experiment runners: the objective protocol (:func:`run_jobs`), random search with selection on
validation and one test evaluation, repetition over seeds with t-intervals, and the MILES
joint-fusion setup."""
from mmrepro.experiments.jobs import Candidate, Job, Objective, run_jobs
from mmrepro.experiments.joint import (LABELS, METHODS, UNIMODAL_LOSSES, Arch, JointSetup, Run, build_model, flattened,
                                      make_method, method_space, probe_accuracy)
from mmrepro.experiments.repeat import (Repeated, paired_difference, search_then_repeat, seeds_from, summarise,
                                        t_interval)
from mmrepro.experiments.search import SearchResult, random_search
from mmrepro.experiments.space import Choice, LogUniform, Uniform, sample

__all__ = ["run_jobs", "Objective", "Candidate", "Job", "Arch", "JointSetup", "Run", "METHODS", "LABELS",
           "UNIMODAL_LOSSES", "build_model", "flattened", "make_method", "method_space", "probe_accuracy",
           "random_search", "SearchResult", "search_then_repeat", "Repeated", "seeds_from", "summarise",
           "paired_difference", "t_interval", "sample", "LogUniform", "Uniform", "Choice"]
