"""Stand-in for cuda-python's runtime bindings: one CUDA device, "NVIDIA Test GPU", compute capability 8.6."""


class _DeviceProp:
    name = b"NVIDIA Test GPU"
    major, minor = 8, 6


def cudaGetDeviceCount() -> tuple[int, int]:
    return 0, 1


def cudaGetDeviceProperties(index: int) -> tuple[int, _DeviceProp]:
    return 0, _DeviceProp()
