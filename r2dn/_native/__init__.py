"""The REN's triangular substitutions as compiled C loops, built once per machine for the backends.

The REN equilibrium is a substitution over its nv neurons, one after the other; written with a
framework's array operations each neuron costs a few operator calls, so a step's operator count
grows with nv. ``substitution.c`` (beside this file) solves each substitution in one call, and
runs a REN's or an R2DN's whole time loop in one call (for torch rollouts without derivatives). Two
libraries are built from it, both with the system's compilers and cached in ``$R2DN_CACHE``
(default ``~/.cache/r2dn``), keyed by the sources, the compiler, the flags and the CPU:

- :func:`c_library`: the loops alone, loaded with ``ctypes`` (:mod:`r2dn.torch.native`); built
  with ``$CC`` (else ``cc``);
- :func:`xla_library`: the loops and ``xla_ffi.cc``, their XLA FFI handler (:mod:`r2dn.jax.native`
  registers it as a custom call); ``xla_ffi.cc`` is compiled with ``$CXX`` (else ``c++``) against
  the FFI headers the caller names (``jax.ffi.include_dir()``).

Each returns ``(library, reason)``: the library, or None and why not ("turned off by
R2DN_NATIVE=0", "no C compiler ...", "compiling failed: ..."). A failed compile warns once; the
backends then run the spec's operations, with the same numbers, slower. Nothing here imports a
framework.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "substitution.c"
XLA_SOURCE = HERE / "xla_ffi.cc"
#: -fno-trapping-math lets the compiler turn the loops' selects into vector blends (see the C file)
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-fno-trapping-math", "-ffp-contract=fast",
         "-std=c11", "-fPIC")
#: the FFI handler only unpacks buffers and calls the loops (-w: jaxlib's headers warn)
CXX_FLAGS = ("-O2", "-std=c++17", "-fPIC", "-w")
#: the C loops' activation codes (``substitution.c``); other activations use the spec's loop
ACTIVATIONS = {"identity": 0, "relu": 1, "tanh": 2, "sigmoid": 3}
#: the forward substitutions solve this many batch rows together (LANES in the C file)
LANES = 32
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
#: each loop's arguments: the substitutions' (batch, n, ld, arrays..., [activation]); the REN
#: rollout's (steps, batch, stride, nu, nx, nv, ny, U, lti, x0, us, ys, xT, activation) and the
#: R2DN rollout's (steps, batch, nu, nx, nv, ny, layers, widths, weights, biases, lti, x0, us, ys,
#: xT, activation, gemm), with ``lti`` an array of the 11 linear-part arrays (``substitution.c``)
ARGS = {"equilibrium": [_I64] * 3 + [_PTR] * 3 + [ctypes.c_int],
        "lower_solve": [_I64] * 3 + [_PTR] * 4, "upper_solve": [_I64] * 3 + [_PTR] * 4,
        "ren_rollout": [_I64] * 7 + [_PTR] * 6 + [ctypes.c_int],
        "r2dn_rollout": [_I64] * 7 + [_PTR] * 8 + [ctypes.c_int, _PTR]}
SUFFIXES = ("f32", "f64")


def cache_dir() -> Path:
    return Path(os.environ.get("R2DN_CACHE") or Path.home() / ".cache" / "r2dn")


def _cpu() -> str:
    """What ``-march=native`` compiles for: the CPU's model and instruction-set flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))


class _NoCompiler(Exception):
    """A compiler the build needs is not on PATH (a reason, not a failure: nothing warns)."""


def _compiler(variable: str, default: str, language: str) -> str:
    name = os.environ.get(variable, default)
    path = shutil.which(name)
    if path is None:
        raise _NoCompiler(f"no {language} compiler ({name!r} is not on PATH)")
    return path


def _build(stem: str, sources: list[Path], compilers: list[str], flags: list[str],
           commands: Callable[[Path], list[list[str]]]) -> Path:
    """The shared library ``stem-<key>.so`` in :func:`cache_dir`, built by ``commands(tmp)``
    (each writes into the directory ``tmp``; the last writes ``tmp/out.so``) unless cached. The
    key covers the sources, the compilers' versions, the flags and the CPU: a cache shared between
    machines never hands one a library built for another's instruction set."""
    versions = [subprocess.run([c, "--version"], capture_output=True, text=True,
                               timeout=60).stdout for c in compilers]
    key = hashlib.sha256("\0".join([*(s.read_text() for s in sources), *versions, *flags,
                                    platform.machine(), platform.system(), _cpu()]).encode())
    target = cache_dir() / f"{stem}-{key.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:   # rename: atomic for
            for command in commands(Path(tmp)):                      # processes racing here
                subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
            os.replace(Path(tmp) / "out.so", target)
    return target


def _load(what: str, fallback: str, build: Callable[[], Path]) -> tuple[ctypes.CDLL | None, str]:
    """``(library, reason)`` for the library ``build()`` makes; a failed compile warns."""
    if os.environ.get("R2DN_NATIVE", "1") == "0":
        return None, "turned off by R2DN_NATIVE=0"
    try:
        return ctypes.CDLL(str(build())), "compiled"
    except _NoCompiler as e:
        return None, str(e)
    except (OSError, subprocess.SubprocessError) as e:
        text = (getattr(e, "stderr", None) or str(e)).strip()
        errors = [line for line in text.splitlines() if "error" in line.lower()]
        detail = (errors[0] if errors else text)[:300]       # the first error, not the includes
        warnings.warn(f"r2dn: could not compile {what} ({detail}); {fallback} (the same "
                      "numbers, slower). Set R2DN_NATIVE=0 to skip the attempt.",
                      RuntimeWarning, stacklevel=4)
        return None, f"compiling failed: {detail}"


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    for suffix in SUFFIXES:
        for name, args in ARGS.items():
            fn = getattr(lib, f"r2dn_{name}_{suffix}")         # cached on lib (lib[...] is not)
            fn.argtypes = args
            fn.restype = ctypes.c_int
    return lib


@cache
def c_library() -> tuple[ctypes.CDLL | None, str]:
    """The loops of ``substitution.c`` with their ctypes signatures, or None and why not (built
    once per process); the torch backend's."""
    def build() -> Path:
        cc = _compiler("CC", "cc", "C")
        return _build("substitution", [SOURCE], [cc], list(FLAGS), lambda tmp: [
            [cc, *FLAGS, "-shared", str(SOURCE), "-o", str(tmp / "out.so"), "-lm"]])

    lib, reason = _load("the torch REN's C loops",
                        "the REN equilibrium runs as torch operations, neuron by neuron", build)
    return (None if lib is None else _declare(lib)), reason


@cache
def xla_library(include: str) -> tuple[ctypes.CDLL | None, str]:
    """The loops and their XLA FFI handlers (symbols ``r2dn_xla_equilibrium_f32``/``_f64``),
    compiled against the FFI headers under ``include`` (part of the cache key, so a new jaxlib
    rebuilds), or None and why not; the JAX backend's."""
    def build() -> Path:
        cc = _compiler("CC", "cc", "C")
        cxx = _compiler("CXX", "c++", "C++")
        headers = sorted((Path(include) / "xla" / "ffi" / "api").glob("*.h"))
        return _build("substitution-xla", [SOURCE, XLA_SOURCE, *headers], [cc, cxx],
                      [*FLAGS, *CXX_FLAGS], lambda tmp: [
                          [cc, *FLAGS, "-c", str(SOURCE), "-o", str(tmp / "loops.o")],
                          [cxx, *CXX_FLAGS, "-I", include, "-c", str(XLA_SOURCE),
                           "-o", str(tmp / "ffi.o")],
                          [cxx, "-shared", str(tmp / "loops.o"), str(tmp / "ffi.o"),
                           "-o", str(tmp / "out.so"), "-lm"]])

    return _load("the JAX REN's C loop (an XLA custom call)",
                 "the REN equilibrium runs as a lax.scan over blocks of neurons", build)
