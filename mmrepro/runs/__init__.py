"""The engine the papers call to train many runs: the objective protocol (:mod:`~mmrepro.runs.protocol`),
random search and seed repeats, executors (this process, or Ray beyond one machine), the run cache and
its keys, and the cost accounting behind ``mmrepro plan``."""
