"""Turning results into the book: the notebook contract, claims and their outcomes, the scorecard, the
book build and its papermill engine, exercises, classroom assignments and the command line."""
