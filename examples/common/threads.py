"""One BLAS thread: call :func:`one_blas_thread` before NumPy is imported.

These models multiply small matrices: multi-threaded OpenBLAS gains nothing and, on a busy CPU,
costs about 20 ms per call (measured: a 96 x 96 triangular solve in JAX 0.10.2 took 20 ms with
OpenBLAS's default threads, 0.1 ms with one). The thread counts are read when a BLAS library is
loaded, so the example scripts call this first thing, before ``import numpy``.
"""

from __future__ import annotations

import os

#: the variables read by OpenBLAS (NumPy, SciPy: JAX's LAPACK on CPU), OpenMP and MKL (torch).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """Set every BLAS thread count to 1, unless the user set it."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
