"""GPU readiness: the conformance suite on a CUDA device (torch and JAX, float32 and float64) and the
expressivity timing grid (REN vs R2DN, both backends) there, in one ``results.json``.

On a machine with a CUDA GPU, for each backend that sees one:

1. **Conformance.** ``r2dn.conformance.suite.run_suite`` with ``device="cuda"`` on that backend
   alone: every case of the tier (``--tier full`` by default; the cases cover float32 and float64)
   against the float64 NumPy reference and the golden fixtures, at the suite's tolerances. Its
   report goes to ``<out>/conformance_<backend>/``. Exit status 1 if any check fails.
2. **Timing grid.** The expressivity study's sizes (benchmarks/expressivity.py: batch 64, horizon
   128; REN nv 20 ... 200 tanh; R2DN nv 16, six hidden layers of width 8 ... 96, relu; float32):
   ``simulate`` forward without gradients, and the gradient of ``mean(x_T^2) + mean(y^2)``,
   median of ``--repeats`` runs after a warm-up, the device synchronised around each run.

Full-precision products: TF32 is disabled in torch (``allow_tf32 = False``, matmul precision
'highest') and JAX runs with ``jax_default_matmul_precision = "highest"``; the certificates need
IEEE float32 products (docs/math/performance.md#performance).

Without a CUDA GPU (neither torch nor JAX sees one) the script says so, writes a skip record
(``{"skipped": true, "reason": ...}``) and exits 0. ``--device cpu`` runs every step on the CPU
instead (a dry run of this script's code path on any machine; with ``--quick``: the quick tier and
a tiny grid).

    python benchmarks/gpu_check.py                        # on a GPU machine
    python benchmarks/gpu_check.py --tier quick --repeats 5
    python benchmarks/gpu_check.py --device cpu --quick --backends torch   # dry run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
BACKENDS = ("torch", "jax")


def probe(name: str) -> dict:
    """Whether backend ``name`` is importable and sees a CUDA GPU; the versions and the reason."""
    try:
        if name == "torch":
            import torch
            gpu = torch.cuda.is_available()
            info = {"version": torch.__version__, "cuda_build": torch.version.cuda, "gpu": gpu}
            if gpu:
                info["device_name"] = torch.cuda.get_device_name(0)
            else:
                info["reason"] = "torch.cuda.is_available() is False"
            return info
        import jax
        gpus = [d for d in jax.devices() if d.platform == "gpu"] if _has_gpu_backend(jax) else []
        info = {"version": jax.__version__, "gpu": bool(gpus)}
        if gpus:
            info["device_name"] = str(gpus[0].device_kind)
        else:
            info["reason"] = (f"jax sees no GPU (devices: {[str(d) for d in jax.devices()]}; "
                              "install jax[cuda12] for one)")
        return info
    except ImportError as err:
        return {"gpu": False, "reason": f"{name} is not installed ({err})"}


def _has_gpu_backend(jax) -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def full_precision(name: str) -> str:
    """IEEE products in ``name`` (no TF32); a sentence saying so."""
    if name == "torch":
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        return "torch: TF32 disabled (cuda.matmul/cudnn allow_tf32 False, matmul precision highest)"
    import jax
    jax.config.update("jax_default_matmul_precision", "highest")
    return "jax: jax_default_matmul_precision = 'highest'"


def conformance(name: str, device: str, tier: str, cases: str | None, out: Path) -> dict:
    """The conformance tier on ``name`` at ``device``; a summary of its outcome."""
    from r2dn.conformance.suite import run_suite
    t0 = time.perf_counter()
    outcome = run_suite(tier=tier, backends=(name,), device=device, cases=cases,
                        report_dir=out / f"conformance_{name}", progress=False)
    checks = [r for r in outcome.results if r.backend == name]
    return {"tier": tier, "device": device, "cases": len(outcome.cases), "checks": len(checks),
            "dtypes": sorted({r.dtype for r in checks}),
            "failed": outcome.failed, "absent": dict(outcome.absent),
            "seconds": time.perf_counter() - t0,
            "report": str(out / f"conformance_{name}")}


def timing_grid(name: str, device: str, quick: bool, repeats: int) -> list[dict]:
    """Forward and gradient medians of the expressivity grid for backend ``name`` on ``device``."""
    import numpy as np

    import expressivity as ex
    s = ex.QUICK if quick else ex.PAPER
    rng = np.random.default_rng(0)
    x0_np = rng.standard_normal((s["batch"], 1)).astype(np.float32)
    us_np = rng.standard_normal((s["horizon"], s["batch"], 1)).astype(np.float32)
    if name == "torch":
        import torch
        import r2dn.torch as rn
        dev = torch.device(device)
        x0, us = torch.as_tensor(x0_np, device=dev), torch.as_tensor(us_np, device=dev)
        sync = (lambda v: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda v: v)

        def prepare(model):
            model = model.to(dev)
            params = [p for p in model.parameters() if p.requires_grad]

            def fwd():
                with torch.no_grad():
                    return model.simulate(x0, us)

            def grad():
                return torch.autograd.grad(ex.loss(model, x0, us), params)
            return fwd, grad
    else:
        import jax
        import r2dn.jax as rn
        dev = jax.devices("gpu" if device.startswith("cuda") else "cpu")[0]
        x0, us = jax.device_put(x0_np, dev), jax.device_put(us_np, dev)
        sync = jax.block_until_ready
        fwd_j = jax.jit(lambda m, a, b: m.simulate(a, b))
        grad_j = jax.jit(jax.grad(ex.loss))

        def prepare(model):
            model = jax.device_put(model, dev)
            return (lambda: fwd_j(model, x0, us)), (lambda: grad_j(model, x0, us))

    rows = []
    for family, sizes in (("ren", s["ren_nv"]), ("r2dn", s["r2dn_widths"])):
        for size in sizes:
            fwd, grad = prepare(ex.build(rn, family, size, s, 0))
            row = {"model": family, "size": size}
            for label, fn in (("forward", fwd), ("gradient", grad)):
                t0 = time.perf_counter()
                sync(fn())
                row[f"{label}_first_s"] = time.perf_counter() - t0
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    sync(fn())
                    times.append(time.perf_counter() - t0)
                row[f"{label}_median_s"] = statistics.median(times)
            rows.append(row)
            print(f"  {name} {family} size {size}: forward {1e3 * row['forward_median_s']:.2f} ms, "
                  f"gradient {1e3 * row['gradient_median_s']:.2f} ms", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the checks; the exit status (0: passed, or no GPU to check; 1: a conformance failure)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda",
                   help="device under test: cuda, cuda:1, ... or cpu (a dry run without a GPU)")
    p.add_argument("--backends", default="torch,jax", help="comma-separated subset of torch,jax")
    p.add_argument("--tier", choices=("quick", "full"), default=None,
                   help="conformance tier (default: full; quick with --quick)")
    p.add_argument("--cases", default=None, help="conformance case filter (globs, as the CLI's)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per grid case")
    p.add_argument("--quick", action="store_true", help="quick tier and a tiny timing grid")
    p.add_argument("--no-timing", action="store_true", help="conformance only")
    p.add_argument("--out", type=Path, default=REPO / "out" / "gpu_check")
    args = p.parse_args(argv)
    names = [b for b in args.backends.split(",") if b]
    if set(names) - set(BACKENDS):
        p.error(f"--backends: choose from {','.join(BACKENDS)}; got {args.backends!r}")
    tier = args.tier or ("quick" if args.quick else "full")
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"script": "benchmarks/gpu_check.py", "argv": list(argv if argv is not None
                                                                 else sys.argv[1:]),
              "device": args.device, "machine": platform.node(), "cpus": os.cpu_count(),
              "probe": {b: probe(b) for b in names}}
    on_gpu = args.device.startswith("cuda")
    chosen = [b for b in names if record["probe"][b]["gpu"]] if on_gpu else \
        [b for b in names if "version" in record["probe"][b]]
    if not chosen:
        reasons = "; ".join(f"{b}: {record['probe'][b]['reason']}" for b in names)
        record.update(skipped=True, reason=f"no CUDA GPU here ({reasons}); nothing was checked. "
                                           "Run with --device cpu for a dry run on the CPU.")
        print(f"SKIPPED: {record['reason']}")
        (args.out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out / 'results.json'}")
        return 0
    record["skipped"] = False
    record["not_checked"] = {b: record["probe"][b].get("reason") for b in names if b not in chosen}
    for b, why in record["not_checked"].items():
        print(f"{b}: not checked ({why})")
    record["precision"] = [full_precision(b) for b in chosen]
    print("\n".join(record["precision"]))
    record["conformance"], record["timing"] = {}, {}
    for b in chosen:
        print(f"conformance ({tier}) on {b} at {args.device} ...", flush=True)
        c = conformance(b, args.device, tier, args.cases, args.out)
        record["conformance"][b] = c
        print(f"  {c['cases']} cases, {c['failed']} failed checks, {c['seconds']:.0f} s", flush=True)
    if not args.no_timing:
        for b in chosen:
            print(f"timing grid on {b} at {args.device} (median of {args.repeats}):", flush=True)
            record["timing"][b] = timing_grid(b, args.device, args.quick, args.repeats)
    failed = sum(c["failed"] for c in record["conformance"].values())
    record["passed"] = failed == 0
    (args.out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"conformance: {'PASS' if failed == 0 else f'{failed} FAILED checks'}; "
          f"wrote {args.out / 'results.json'}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
