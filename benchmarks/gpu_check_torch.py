"""GPU check of r2dn's torch backend: CUDA parity with the NumPy reference, and simulate timings.

With CUDA present:

1. **Parity.** For every family of the catalogue, a float64 model built from a seed by r2dn.numpy
   is converted to a CUDA float64 torch model; its ``explicit()`` (every matrix, flattened) and its
   ``simulate()`` (``forward`` for feed-forward models) must equal the NumPy reference to
   ``PARITY_RTOL`` relative (plus ``PARITY_ATOL_SCALE`` times each array's largest entry, for
   entries that cancel to zero). Exit status 1 if any family fails.
2. **Timing.** ``simulate`` forward (no grad) and forward + backward, CPU vs CUDA, float32 and
   float64, median of ``--repeats`` runs after warm-up, CUDA synchronised around each run.

TF32 is disabled (``torch.backends.cuda.matmul.allow_tf32 = False``, cuDNN likewise,
``torch.set_float32_matmul_precision("highest")``): the certificates need full-precision matmuls
(DESIGN §6), so every float32 number printed comes from IEEE float32 products, and every float64
one from float64 products. The script prints this before any number.

Without CUDA it says so and exits 0. ``--device cpu`` runs the same checks with the CPU standing in
for the GPU (a dry run of this script's code path on any machine).

Usage::

    python benchmarks/gpu_check_torch.py                 # parity + timings on cuda
    python benchmarks/gpu_check_torch.py --T 200 --batch 64 --repeats 20
    python benchmarks/gpu_check_torch.py --device cpu    # dry run without a GPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import r2dn.numpy as rnp
import r2dn.torch as rt
from r2dn._spec import flatten_explicit

#: float64 parity: elementwise relative tolerance ...
PARITY_RTOL = 1e-10
#: ... plus this times the array's largest entry (entries that cancel to ~0; GPU reductions sum
#: in another order than LAPACK/BLAS on the CPU).
PARITY_ATOL_SCALE = 1e-12

QSR = dict(Q=-np.eye(2), S=0.1 * np.ones((3, 2)), R=np.eye(3))
#: (class name, args, kwargs) of the parity cases: nu = 3 > ny = 2 except PassiveREN (nu = ny).
PARITY_CASES: list[tuple[str, tuple, dict]] = [
    ("SandwichLayer", (3, 4), dict(activation="tanh")),
    ("LBDN", (3, (8, 6), 2), dict(gamma=2.0)),
    ("ContractingREN", (3, 4, 6, 2), dict(activation="tanh", abar=0.95)),
    ("LipschitzREN", (3, 4, 6, 2), dict(gamma=2.0)),
    ("GeneralREN", (3, 4, 6, 2), dict(activation="sigmoid", **QSR)),
    ("PassiveREN", (2, 4, 6, 2), dict(nu_index=0.1)),
    ("ContractingR2DN", (3, 4, 6, 2), dict(hidden=(8,))),
    ("LipschitzR2DN", (3, 4, 6, 2), dict(hidden=(8,), gamma=2.0)),
    ("GeneralR2DN", (3, 4, 6, 2), dict(hidden=(8,), **QSR)),
]
#: (label, factory(dtype)) of the timing cases: the paper-sized recurrent models.
TIMING_CASES: list[tuple[str, Callable[[str], torch.nn.Module]]] = [
    ("ContractingREN nx=16 nv=32", lambda d: rt.ContractingREN(4, 16, 32, 2, dtype=d)),
    ("ContractingR2DN nx=16 nv=32 hidden=(64,)",
     lambda d: rt.ContractingR2DN(4, 16, 32, 2, hidden=(64,), dtype=d)),
    ("LipschitzR2DN nx=16 nv=32 hidden=(64,)",
     lambda d: rt.LipschitzR2DN(4, 16, 32, 2, hidden=(64,), gamma=5.0, dtype=d)),
]


def full_precision() -> str:
    """Disable TF32 everywhere and return a sentence saying what precision the numbers use."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return ("precision: TF32 disabled (torch.backends.cuda.matmul.allow_tf32=False, "
            "torch.backends.cudnn.allow_tf32=False, float32 matmul precision 'highest'); float32 "
            "runs use IEEE float32 products, float64 runs float64 products.")


def _max_rel_excess(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / (atol + rtol |want|): <= 1 means within tolerance."""
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    bound = PARITY_ATOL_SCALE * scale + PARITY_RTOL * np.abs(want)
    return float(np.max(np.abs(got - want) / bound)) if want.size else 0.0


def parity(device: torch.device) -> bool:
    """Check every family on ``device`` in float64 against r2dn.numpy; print one line each."""
    print(f"\nparity on {device} (float64) vs r2dn.numpy: rtol={PARITY_RTOL:g}, "
          f"atol={PARITY_ATOL_SCALE:g} x max|ref|")
    rng = np.random.default_rng(0)
    ok_all = True
    for name, args, kw in PARITY_CASES:
        ref = getattr(rnp, name)(*args, seed=11, dtype="float64", **kw)
        model = rt.convert(ref, device=device)
        assert model.device.type == device.type and model.config.dtype == "float64"
        worst, where = 0.0, ""
        e_ref, e_dev = flatten_explicit(ref.explicit()), flatten_explicit(model.explicit())
        if sorted(e_ref) != sorted(e_dev):
            worst, where = float("inf"), "explicit names differ"
        for key, want in e_ref.items():
            if key in e_dev:
                r = _max_rel_excess(e_dev[key].detach().cpu().numpy(), np.asarray(want))
                worst, where = max((worst, where), (r, f"explicit {key}"))
        c = ref.config
        if c.is_recurrent:
            x0, us = rng.normal(size=(5, c.nx)), rng.normal(size=(20, 5, c.nu))
            want_out = ref.simulate(x0, us)
            with torch.no_grad():
                got_out = model.simulate(torch.as_tensor(x0, device=device),
                                         torch.as_tensor(us, device=device))
            labels = ("x_T", "ys")
        else:
            u = rng.normal(size=(5, c.in_features))
            want_out = (ref(u),)
            with torch.no_grad():
                got_out = (model(torch.as_tensor(u, device=device)),)
            labels = ("y",)
        for label, got, want in zip(labels, got_out, want_out):
            r = _max_rel_excess(got.cpu().numpy(), np.asarray(want))
            worst, where = max((worst, where), (r, f"simulate {label}"))
        ok = worst <= 1.0
        ok_all &= ok
        print(f"  {name:16s} {'PASS' if ok else 'FAIL'}  worst error / tolerance = {worst:.3g} "
              f"({where})")
    return ok_all


def _time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds (2 warm-up runs; CUDA synchronised)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def timings(devices: list[torch.device], T: int, batch: int, repeats: int) -> None:
    """Print simulate forward and forward + backward times per model, dtype and device."""
    print(f"\nsimulate timings: T={T}, batch={batch}, median of {repeats} (ms)")
    header = "  {:42s} {:8s} " + " ".join("{:>22s}" for _ in devices)
    print(header.format("model", "dtype", *[f"{d} fwd / fwd+bwd" for d in devices]))
    for label, make in TIMING_CASES:
        for dtype in ("float32", "float64"):
            cells = []
            for device in devices:
                model = make(dtype).to(device)
                gen = torch.Generator().manual_seed(0)
                us = torch.randn(T, batch, model.config.nu, generator=gen,
                                 dtype=rt.torch_dtype(dtype)).to(device)
                x0 = model.init_state(batch)

                def forward() -> None:
                    with torch.no_grad():
                        model.simulate(x0, us)

                def backward() -> None:
                    model.zero_grad(set_to_none=True)
                    model.simulate(x0, us)[1].square().mean().backward()

                fwd, bwd = _time(forward, device, repeats), _time(backward, device, repeats)
                cells.append(f"{fwd:9.2f} / {bwd:9.2f}")
            print(header.format(label, dtype, *cells))


def main(argv: list[str] | None = None) -> int:
    """Run the checks; returns the exit status (0: passed or no CUDA, 1: a parity failure)."""
    p = argparse.ArgumentParser(description="CUDA parity and timings of r2dn.torch.")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="the device under test ('cpu' = dry run without a GPU)")
    p.add_argument("--T", type=int, default=100, help="time steps of the timed simulations")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-timing", action="store_true", help="parity only")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, "
          f"CUDA available: {torch.cuda.is_available()}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: nothing to check (use --device cpu for a dry run).")
        return 0
    device = torch.device(args.device)
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(full_precision())
    ok = parity(device)
    if not args.no_timing:
        devices = [torch.device("cpu")] + ([device] if device.type == "cuda" else [])
        timings(devices, args.T, args.batch, args.repeats)
    print("\nparity: " + ("all families PASS" if ok else "FAILURES above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
