"""Leaves every layer may use: argument checks, atomic files, the device and threads, the figure style and
the package version. Nothing here imports the rest of the package."""
