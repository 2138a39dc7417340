"""The data of RobustNeuralNetworks.jl's examples, regenerated in NumPy (no Julia needed).

Two examples of RobustNeuralNetworks.jl 0.3 produced the Julia-trained models r2dn reads back:

* ``lbdn_mnist.jl`` trained an LBDN and a dense baseline on MNIST: :func:`read_idx` reads the
  standard MNIST idx files (optionally gzipped) and :func:`mnist_test_set` the test split as
  ``(images (10000, 784) in [0, 1], labels (10000,))``, pixels in Julia's column-major flattening
  order (equal to NumPy's row-major ``img.reshape(784)`` of a (row, col) image).
* ``ren_obsv_pde.jl`` trained a contracting REN as an observer of a reaction-diffusion PDE:
  :func:`reaction_diffusion` simulates that PDE exactly as the example does, and
  :func:`observer_inputs` builds the observer's inputs ``[b; b; xi_25]``.

The paper's observer example (``examples/pde_observer.py``) uses the same PDE through
:func:`reaction_diffusion`. Everything here is plain NumPy, seeded by the caller's
``numpy.random.Generator``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from r2dn.julia.models import as_model_array

__all__ = [
    "PDE_BOUNDARY_STEP", "PDE_DT", "PDE_DZ", "PDE_EULER_STEPS", "PDE_LENGTH", "PDE_MEASURED_INDEX",
    "PDE_POINTS", "mnist_test_set", "observer_inputs", "one_step_loss", "pde_step",
    "reaction_diffusion", "read_idx",
]

#: Grid points of the PDE (Julia's ``nx = 51``) on [0, PDE_LENGTH].
PDE_POINTS = 51
#: Length of the spatial domain (Julia's ``L = 10.0``).
PDE_LENGTH = 10.0
#: Grid spacing dz = L / (nx - 1) = 0.2.
PDE_DZ = PDE_LENGTH / (PDE_POINTS - 1)
#: Euler time step dt = sigma dz^2 with sigma = 0.1.
PDE_DT = 0.1 * PDE_DZ**2
#: Euler updates per sample: the Julia loop runs 5 times but returns the state before the last.
PDE_EULER_STEPS = 4
#: Standard deviation of the boundary input's random walk, the Float32 literal ``0.05f0`` of the
#: Julia example (promoted to Float64 there, as here).
PDE_BOUNDARY_STEP = float(np.float32(0.05))
#: The measured grid point: Julia's ``u[end ÷ 2]`` = index 25 (1-based) = 24 here.
PDE_MEASURED_INDEX = PDE_POINTS // 2 - 1


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not.

    Parameters
    ----------
    path : str or os.PathLike
        A ``*-idx?-ubyte`` file, or the same gzipped (``.gz``).

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of the shape the header states, e.g. (10000, 28, 28) for images.

    Raises
    ------
    ValueError
        If the header is not an unsigned-byte idx header or the data size disagrees with it.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"read_idx: `path` {os.fspath(path)!r} is not an unsigned-byte idx file "
                         f"(header {raw[:4]!r}).")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError(f"read_idx: `path` {os.fspath(path)!r} holds {len(raw) - offset} bytes of "
                         f"data; its header says shape {shape}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def mnist_test_set(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test split from ``folder/t10k-{images-idx3,labels-idx1}-ubyte.gz``.

    Returns
    -------
    images : numpy.ndarray
        (10000, 784) float64 in [0, 1], each row a (row, col) image flattened row-major, which is
        the pixel order of Julia's ``Flux.flatten`` of a W x H x N array.
    labels : numpy.ndarray
        (10000,) uint8, the digits 0-9.

    Raises
    ------
    FileNotFoundError
        Naming the missing file.
    """
    folder = Path(folder)
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    return images.reshape(images.shape[0], -1) / 255.0, labels


def pde_step(xi: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One sample of the reaction-diffusion PDE ``xi_t = xi_zz + xi (1 - xi)(xi - 1/2) / 2``.

    Explicit Euler on the grid of :data:`PDE_POINTS` points with ``dt = PDE_DT``; after each of
    the :data:`PDE_EULER_STEPS` updates both boundary values are set to ``b`` (the Julia example's
    ``f(u0, d)``: the boundaries of ``xi`` itself are those of the previous sample).

    Parameters
    ----------
    xi : numpy.ndarray
        (..., 51) states.
    b : numpy.ndarray or float
        (...) boundary inputs.

    Returns
    -------
    numpy.ndarray
        (..., 51) the next states.
    """
    b = np.asarray(b, dtype=np.float64)[..., None]
    u = np.asarray(xi, dtype=np.float64)
    for _ in range(PDE_EULER_STEPS):
        inner = u[..., 1:-1]
        laplacian = (u[..., :-2] + u[..., 2:] - 2.0 * inner) / PDE_DZ**2
        reaction = inner * (1.0 - inner) * (inner - 0.5)
        inner = inner + PDE_DT * (laplacian + reaction / 2.0)
        edge = np.broadcast_to(b, inner.shape[:-1] + (1,))
        u = np.concatenate([edge, inner, edge], axis=-1)
    return u


def reaction_diffusion(n_samples: int, rng: np.random.Generator, *, batch: int = 1,
                       xi0: float | np.ndarray = 0.0,
                       b0: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the PDE of ``ren_obsv_pde.jl`` with its random-walk boundary input.

    ``xi[t+1] = pde_step(xi[t], b[t])`` and ``b[t+1] = clip(b[t] + 0.05 N(0, 1), 0, 1)``, starting
    from ``xi[0] = xi0`` everywhere and ``b[0] = b0`` (the example's training data start from 0,
    its observer test from 0.5).

    Parameters
    ----------
    n_samples : int
        T, the number of samples (states) per trajectory.
    rng : numpy.random.Generator
        Source of the random walk.
    batch : int
        Independent trajectories.
    xi0 : float or numpy.ndarray
        Initial state, broadcast to (batch, 51): a value for every grid point, or states (e.g.
        the last states of an earlier run, to start from a warmed-up distribution).
    b0 : float or numpy.ndarray
        Initial boundary input, broadcast to (batch,).

    Returns
    -------
    xi : numpy.ndarray
        (T, batch, 51) states.
    b : numpy.ndarray
        (T, batch) boundary inputs.
    """
    for name, value in (("n_samples", n_samples), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"reaction_diffusion: `{name}` must be a positive integer; "
                             f"got {name}={value!r}.")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"reaction_diffusion: `rng` must be a numpy.random.Generator; "
                        f"got {type(rng).__name__}.")
    xi = np.empty((n_samples, batch, PDE_POINTS))
    b = np.empty((n_samples, batch))
    xi[0], b[0] = xi0, b0
    for t in range(n_samples - 1):
        xi[t + 1] = pde_step(xi[t], b[t])
        b[t + 1] = np.clip(b[t] + PDE_BOUNDARY_STEP * rng.standard_normal(batch), 0.0, 1.0)
    return xi, b


def observer_inputs(xi: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The observer's inputs ``[b; b; xi_25]`` (the example's ``[U; g(X, U)]``, nu = 3).

    Parameters
    ----------
    xi : numpy.ndarray
        (..., 51) states.
    b : numpy.ndarray
        (...) boundary inputs.

    Returns
    -------
    numpy.ndarray
        (..., 3): the input twice, then the measured state at Julia index 25.
    """
    return np.stack([b, b, xi[..., PDE_MEASURED_INDEX]], axis=-1)


def one_step_loss(model: Any, xi: np.ndarray, b: np.ndarray) -> float:
    """The example's training loss on a trajectory: mean over samples of ``||x+_pred - x+||^2``.

    Every sample ``t`` predicts ``xi[t+1]`` by one step of ``model`` (a recurrent r2dn model of
    any backend with nx = 51, nu = 3) from the true state ``xi[t]`` and the input
    ``[b; b; xi_25][t]``; all ``(T - 1) * batch`` samples run as one batch.

    Parameters
    ----------
    model : recurrent model
        ``model(x (batch, 51), u (batch, 3)) -> (x_next, y)``; the data are converted to the
        model's backend, dtype and device.
    xi : numpy.ndarray
        (T, batch, 51) states.
    b : numpy.ndarray
        (T, batch) inputs.

    Returns
    -------
    float
        The mean squared one-step prediction error (summed over the 51 states).
    """
    x = xi[:-1].reshape(-1, PDE_POINTS)
    u = observer_inputs(xi[:-1], b[:-1]).reshape(-1, 3)
    x_next, _ = model(as_model_array(model, x), as_model_array(model, u))
    x_next = _numpy(x_next)
    return float(np.mean(np.sum((x_next - xi[1:].reshape(-1, PDE_POINTS)) ** 2, axis=-1)))


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)
