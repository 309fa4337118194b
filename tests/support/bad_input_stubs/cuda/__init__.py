"""Stand-in for cuda-python (see ../README.md)."""
