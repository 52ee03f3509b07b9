"""Running many runs: executors (this process, or Ray beyond one machine), the run cache and
cost plans. The objective protocol they serve is :mod:`mmrepro.experiments.jobs`."""
