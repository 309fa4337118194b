"""Stand-in for TensorRT's Python package (see ../README.md): version, Logger, and a Runtime whose
deserializer records that it was called and loads nothing."""

import os

__version__ = "10.0.1"


class Logger:
    WARNING = 2

    def __init__(self, level: int) -> None:
        self.level = level


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> None:
        with open(os.environ["QAMOE_TEST_DESERIALIZED"], "w") as f:
            f.write(f"deserialize_cuda_engine called with {len(data)} bytes\n")
