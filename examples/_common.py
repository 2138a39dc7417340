"""What the paper's examples and the benchmarks share: the command line, the framework adapter, the
training step, learning-rate schedules, and the ``results.json`` writer.

The scripts are written once against this module; only :class:`TorchBackend` and :class:`JaxBackend`
know a framework, and each is a few lines: turn NumPy data into the framework's arrays, run one
optimiser step (Adam, elementwise gradient clipping, a learning rate set per step), simulate without
gradients. Losses are written once against the array API (``xp``), so the same function is traced by
JAX and run by torch.

Scripts import it as ``from _common import ...`` (the ``examples/`` folder is on ``sys.path`` when a
script in it runs; the benchmarks add it themselves).
"""

from __future__ import annotations

import os

#: BLAS/OpenMP threads of NumPy, SciPy-OpenBLAS (JAX's LAPACK on CPU) and torch, unless the user
#: set them. These models multiply small matrices: multi-threaded OpenBLAS gains nothing and, on a
#: busy CPU, costs ~20 ms per call (measured: a 96 x 96 triangular solve in JAX 0.10.2 takes 20 ms
#: with OpenBLAS's default threads, 0.1 ms with one). Set before NumPy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import abc  # noqa: E402
import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BACKEND_CHOICES = ("torch", "jax")
#: Adam as in the paper's code (optax.adam defaults; torch.optim.Adam has the same ones).
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


# -- command line ---------------------------------------------------------------------------------

def base_parser(description: str, *, default_epochs: int | None, default_out: str,
                models: tuple[str, ...] | None = ("ren", "r2dn"),
                default_backend: str = "jax") -> argparse.ArgumentParser:
    """The options every script shares (DESIGN: examples/ and benchmarks/)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", choices=BACKEND_CHOICES, default=default_backend,
                   help="framework that runs the models")
    if models is not None:
        p.add_argument("--model", choices=models, default=models[-1],
                       help="contracting REN or contracting R2DN")
    if default_epochs is not None:
        p.add_argument("--epochs", type=int, default=None,
                       help=f"training epochs (paper: {default_epochs}; --quick: a few)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model and of the data")
    p.add_argument("--out", type=Path, default=REPO / "out" / default_out,
                   help="folder for results.json and the PNG plots")
    p.add_argument("--quick", action="store_true",
                   help="tiny data, model and epochs: a smoke run of a few seconds to minutes (CI)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1 is fastest for these small per-step products, "
                        "and the only sane choice on a shared 2-core CPU)")
    p.add_argument("--unroll", type=int, default=None,
                   help="JAX only: time steps per lax.scan iteration in simulate (default: 8 for "
                        "R2DN, 2.4x faster training on CPU; 1 for REN, whose compile time grows "
                        "with unroll x nv)")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")
    return p


def benchmark_parser(description: str, *, default_out: str,
                     repeats_help: str) -> argparse.ArgumentParser:
    """The options both benchmarks share: ``--backend torch|jax|both``, ``--repeats``, ``--seed``,
    ``--out``, ``--quick``, ``--threads`` and ``--no-progress``."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", choices=(*BACKEND_CHOICES, "both"), default="both")
    p.add_argument("--repeats", type=int, default=None, help=repeats_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "out" / default_out)
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--no-progress", action="store_true")
    return p


def run_settings(args: argparse.Namespace, paper: dict[str, Any],
                 quick: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings of this run, the paper's settings)`` for ``args.model``.

    ``paper`` and ``quick`` are a script's settings tables, whose ``"nv"`` entry maps each model
    to its size; ``--quick`` overrides with ``quick``, ``--epochs`` overrides the epochs.
    """
    def for_model(table: dict[str, Any]) -> dict[str, Any]:
        return {k: (v[args.model] if k == "nv" else v) for k, v in table.items()}

    paper_s = for_model(paper)
    s = {**paper_s, **(for_model(quick) if args.quick else {})}
    if args.epochs is not None:
        s["epochs"] = args.epochs
    return s, paper_s


def progress(iterable: Iterable, args: argparse.Namespace, **kw: Any):
    """A tqdm progress bar (to stderr), unless ``--no-progress`` or ``TQDM_DISABLE`` is set."""
    from tqdm.auto import tqdm
    return tqdm(iterable, disable=args.no_progress or bool(os.environ.get("TQDM_DISABLE")),
                dynamic_ncols=True, **kw)


def log_epoch(args: argparse.Namespace, epoch: int, epochs: int, **values: Any) -> None:
    """One line per epoch when the progress bars are off (logs of long runs)."""
    if args.no_progress or os.environ.get("TQDM_DISABLE"):
        items = ", ".join(f"{k} {_fmt(v)}" for k, v in values.items())
        print(f"epoch {epoch + 1}/{epochs}: {items}", flush=True)


# -- the framework adapters -----------------------------------------------------------------------

class Backend(abc.ABC):
    """What a script needs from a framework. ``rn`` is ``r2dn.torch`` or ``r2dn.jax``."""

    name: str
    rn: Any
    xp: Any
    unroll: int = 1

    def sim(self, model: Any, x0: Any, us: Any) -> tuple[Any, Any]:
        """``model.simulate(x0, us)`` (JAX: with ``unroll=self.unroll``), for use in losses."""
        return model.simulate(x0, us)

    @abc.abstractmethod
    def asarray(self, a: np.ndarray) -> Any:
        ...

    def numpy(self, a: Any) -> np.ndarray:
        from r2dn._model import to_numpy
        return np.asarray(to_numpy(a), dtype=np.float64)

    @abc.abstractmethod
    def trainer(self, model: Any, loss_fn: Callable[..., Any], clip: float | None) -> "Trainer":
        ...

    @abc.abstractmethod
    def simulate(self, model: Any, x0: Any, us: Any) -> tuple[Any, Any]:
        """``model.simulate(x0, us)`` with no gradient (jitted in JAX)."""
        ...

    @abc.abstractmethod
    def evaluator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` run without gradients: under ``torch.no_grad()``, or ``jax.jit``-compiled (so
        a function that calls a model many times is traced once, not dispatched op by op)."""
        ...

    @abc.abstractmethod
    def eager(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` run without gradients and without compiling it as a whole (JAX: op by op; the
        models' own methods are compiled by r2dn.jax), for loops too long to trace."""
        ...

    def sync(self, value: Any) -> Any:
        """Wait until ``value`` (an array or a pytree of arrays) is computed."""
        return value

    @abc.abstractmethod
    def grad_callable(self, model: Any, loss_fn: Callable[..., Any],
                      *args: Any) -> Callable[[], Any]:
        """A zero-argument callable computing the gradient of ``loss_fn(model, *args)`` with
        respect to every free parameter (forward and backward pass; jitted in JAX)."""
        ...

    def forward_callable(self, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """A zero-argument callable running ``fn(*args)`` without gradients (jitted in JAX)."""
        ev = self.evaluator(fn)
        return lambda: ev(*args)

    @abc.abstractmethod
    def info(self) -> dict[str, Any]:
        ...


class Trainer(abc.ABC):
    """One optimiser step at a time: ``loss, aux = trainer.step(lr, *batch)``; ``trainer.model``.

    Adam (betas 0.9/0.999, eps 1e-8) on every free parameter, the gradient clipped elementwise to
    ``[-clip, clip]`` first (optax.clip, as the paper's code), the learning rate given per step (so
    any schedule is a plain Python function of the step or epoch). ``loss_fn(model, *batch)``
    returns ``(scalar loss, aux)``; ``aux`` comes back without gradient (e.g. the final state).
    """

    model: Any

    @abc.abstractmethod
    def step(self, lr: float, *batch: Any) -> tuple[float, Any]:
        ...


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, threads: int = 1) -> None:
        import array_api_compat.torch as xp
        import torch

        import r2dn.torch as rn
        torch.set_num_threads(threads)
        self.torch, self.rn, self.xp, self.threads = torch, rn, xp, threads

    def asarray(self, a: np.ndarray) -> Any:
        return self.torch.as_tensor(np.asarray(a, dtype=np.float32))

    def trainer(self, model, loss_fn, clip):
        return _TorchTrainer(self.torch, model, loss_fn, clip)

    def simulate(self, model, x0, us):
        with self.torch.no_grad():
            return model.simulate(x0, us)

    def evaluator(self, fn):
        def run(*args):
            with self.torch.no_grad():
                return fn(*args)
        return run

    eager = evaluator

    def grad_callable(self, model, loss_fn, *args):
        params = [p for p in model.parameters() if p.requires_grad]

        def run():
            loss = loss_fn(model, *args)
            return self.torch.autograd.grad(loss, params)
        return run

    def info(self):
        return {"framework": "torch", "version": self.torch.__version__, "device": "cpu",
                "threads": self.torch.get_num_threads(), "dtype": "float32"}


class _TorchTrainer(Trainer):
    def __init__(self, torch, model, loss_fn, clip):
        self.torch, self.model, self.loss_fn, self.clip = torch, model, loss_fn, clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=1.0, betas=ADAM_BETAS, eps=ADAM_EPS)

    def step(self, lr, *batch):
        loss, aux = self.loss_fn(self.model, *batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip is not None:
            for p in self.params:
                p.grad.clamp_(-self.clip, self.clip)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        return float(loss.detach()), _detach(self.torch, aux)


def _detach(torch, value: Any) -> Any:
    """``value`` (a tensor, None, or tuples/lists of them) cut from the autograd graph."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(torch, v) for v in value)
    return value


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, threads: int = 1) -> None:
        import jax
        import jax.numpy as jnp

        import r2dn.jax as rn
        self.jax, self.jnp, self.rn, self.xp = jax, jnp, rn, jnp
        self.device = jax.devices()[0]
        self._simulate = jax.jit(lambda m, x0, us: self.sim(m, x0, us))

    def asarray(self, a: np.ndarray) -> Any:
        # committed to the device, as jit outputs are: a jitted function called first with
        # uncommitted arrays and then with its own (committed) outputs compiles twice
        return self.commit(np.asarray(a, dtype=np.float32))

    def commit(self, tree: Any) -> Any:
        """Every array of ``tree`` committed to the default device (see :meth:`asarray`)."""
        return self.jax.device_put(tree, self.device)

    def trainer(self, model, loss_fn, clip):
        return _JaxTrainer(self, model, loss_fn, clip)

    def sim(self, model, x0, us):
        return model.simulate(x0, us, unroll=self.unroll)

    def simulate(self, model, x0, us):
        return self._simulate(model, x0, us)

    def evaluator(self, fn):
        return self.jax.jit(fn)

    def eager(self, fn):
        return fn

    def sync(self, value):
        return self.jax.block_until_ready(value)

    def grad_callable(self, model, loss_fn, *args):
        g = self.jax.jit(self.jax.grad(loss_fn))
        args = self.commit(args)
        model = self.commit(model)
        return lambda: g(model, *args)

    def info(self):
        return {"framework": "jax", "version": self.jax.__version__, "unroll": self.unroll,
                "device": str(self.jax.devices()[0]), "dtype": "float32",
                "matmul_precision": self.rn.MATMUL_PRECISION}


class _JaxTrainer(Trainer):
    def __init__(self, bk, model, loss_fn, clip):
        import optax
        jax = bk.jax
        self.commit = bk.commit
        parts = ([optax.clip(clip)] if clip is not None else []) + [
            optax.scale_by_adam(b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)]
        tx = optax.chain(*parts)
        self.model = bk.commit(model)
        self.state = bk.commit(tx.init(self.model))

        def step(model, state, lr, *batch):
            (loss, aux), grads = jax.value_and_grad(
                lambda m: loss_fn(m, *batch), has_aux=True)(model)
            updates, state = tx.update(grads, state, model)
            updates = jax.tree.map(lambda u: -lr * u, updates)
            return optax.apply_updates(model, updates), state, loss, jax.lax.stop_gradient(aux)

        self._step = jax.jit(step)

    def step(self, lr, *batch):
        self.model, self.state, loss, aux = self._step(self.model, self.state, np.float32(lr),
                                                       *self.commit(batch))
        return float(loss), aux


def make_backend(name: str, threads: int = 1, unroll: int | None = None,
                 model: str | None = None) -> Backend:
    """The adapter of ``name`` (``"torch"`` or ``"jax"``), importing only that framework.

    ``unroll`` (JAX's lax.scan unroll in :meth:`Backend.sim`) defaults to 8 for ``model="r2dn"``
    and 1 otherwise.
    """
    if name == "torch":
        return TorchBackend(threads)
    if name == "jax":
        bk = JaxBackend(threads)
        bk.unroll = unroll if unroll is not None else (8 if model == "r2dn" else 1)
        return bk
    raise ValueError(f"make_backend: `name` must be one of {BACKEND_CHOICES}; got {name!r}.")


def num_params(model: Any) -> int:
    """The number of free parameters (every entry of ``model.direct()``)."""
    return int(sum(math.prod(tuple(v.shape)) for v in model.direct().values()))


# -- schedules ------------------------------------------------------------------------------------

def step_decay(lr0: float, every: int, factor: float = 0.1,
               floor: float = 0.0) -> Callable[[int], float]:
    """``lr(epoch) = max(lr0 * factor ** (epoch // every), floor)`` (optax.exponential_decay,
    staircase, ``end_value=floor``, as the paper's code)."""
    return lambda epoch: max(lr0 * factor ** (epoch // every), floor)


class ReduceOnPlateau:
    """Learning-rate scale cut by ``factor`` when the epoch loss has not improved for ``patience``
    epochs; never below ``min_scale`` (optax.contrib.reduce_on_plateau with rtol = 1e-4, atol = 0,
    cooldown = 0, as the paper's PDE code uses it)."""

    def __init__(self, factor: float = 0.1, patience: int = 10, min_scale: float = 0.0,
                 rtol: float = 1e-4) -> None:
        self.factor, self.patience, self.min_scale, self.rtol = factor, patience, min_scale, rtol
        self.scale, self.best, self.bad = 1.0, math.inf, 0

    def update(self, value: float) -> float:
        if value < (1 - self.rtol) * self.best:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                self.scale, self.bad = max(self.scale * self.factor, self.min_scale), 0
        return self.scale


# -- settings, deviations, results ----------------------------------------------------------------

def deviations(paper: Mapping[str, Any], used: Mapping[str, Any],
               notes: Iterable[str] = ()) -> list[str]:
    """Every setting of ``used`` that differs from ``paper``, in words, then the fixed ``notes``."""
    out = [f"{k}: paper {paper[k]!r}, here {used[k]!r}" for k in paper
           if k in used and _normal(paper[k]) != _normal(used[k])]
    return out + list(notes)


def _normal(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def write_results(out: Path, script: str, args: argparse.Namespace, settings: Mapping[str, Any],
                  devs: list[str], figures: Mapping[str, Any], backend: Backend | None = None,
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out/results.json`` and print the deviations and the figures."""
    out.mkdir(parents=True, exist_ok=True)
    cli = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {
        "script": script,
        "command": "python " + " ".join([script] + sys.argv[1:]),
        "args": cli,
        "settings": dict(settings),
        "deviations_from_paper": devs,
        "figures": dict(figures),
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "cpu_load_1_5_15min": cpu_load(),
                        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                        **(backend.info() if backend else {})},
        **(dict(extra) if extra else {}),
    }
    path = out / "results.json"
    path.write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
    print("deviations from the paper:" if devs else "deviations from the paper: none")
    for d in devs:
        print(f"  - {d}")
    for k, v in figures.items():
        print(f"{k}: {_fmt(v)}")
    print(f"wrote {path}")
    return path


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Path):
        return str(v)
    return v


def nrmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``sqrt(mean((y - yhat)^2) / mean(y^2))`` over every entry (the paper's NRMSE; x100 for %)."""
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2) / np.mean(y_true ** 2)))


def plt_figure(*args: Any, **kw: Any):
    """A Matplotlib figure on the non-interactive Agg canvas (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(*args, **kw)


def save_figure(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)


class Stopwatch:
    """``with Stopwatch() as sw: ...``; ``sw.seconds`` afterwards."""

    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


# -- timing ---------------------------------------------------------------------------------------

def time_call(fn: Callable[[], Any], repeats: int, sync: Callable[[Any], Any] = lambda v: v,
              warmup: int = 1) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times (compilation, caches), then ``repeats`` times, each waited for
    with ``sync``; returns the median, min, max and every time in seconds, and the first call's
    time (``first``: compile + run for a jitted function)."""
    t0 = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        sync(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t0)
    return {"median": float(np.median(times)), "min": float(np.min(times)),
            "max": float(np.max(times)), "first": first, "times": times}


def loglog_slope(x: Iterable[float], y: Iterable[float]) -> tuple[float, float]:
    """Least-squares slope of log y against log x and its standard error."""
    lx, ly = np.log(np.asarray(list(x), float)), np.log(np.asarray(list(y), float))
    p = np.polyfit(lx, ly, 1)
    n = len(lx)
    if n < 3:
        return float(p[0]), float("nan")
    resid = ly - np.polyval(p, lx)
    se = np.sqrt(np.sum(resid**2) / (n - 2) / np.sum((lx - lx.mean()) ** 2))
    return float(p[0]), float(se)


def cpu_load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (timings on a shared CPU depend on them)."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int,
                     sync: Callable[[Any], Any] = lambda v: v) -> dict[str, dict[str, Any]]:
    """Time several callables round-robin (each round runs every one once, the order rotating),
    so a shared machine's load drifts affect them alike; one warm-up call each first.

    Returns ``{name: {"median", "min", "max", "first", "times"}}`` in seconds.
    """
    names = list(fns)
    out: dict[str, dict[str, Any]] = {}
    for k in names:
        t0 = time.perf_counter()
        sync(fns[k]())
        out[k] = {"first": time.perf_counter() - t0, "times": []}
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            sync(fns[k]())
            out[k]["times"].append(time.perf_counter() - t0)
    for v in out.values():
        v.update(median=float(np.median(v["times"])), min=float(np.min(v["times"])),
                 max=float(np.max(v["times"])))
    return out
