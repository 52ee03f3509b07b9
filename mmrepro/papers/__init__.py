"""One folder per paper (MFH, MIND, MILES, MultiModN); no paper imports another. Each holds its methods,
its experiments, and its ``plan`` (what its chapter trains, for ``mmrepro plan``)."""
