"""torch.compile of an r2dn model: compile time and the compiled gradient against eager.

The F-16 R2DN (nu 2, nx 75, nv 75, LBDN 3 x 87 relu, ny 3, batch 4, horizon 256, float32) is
compiled with ``model.compile()``, which compiles a block of K steps (4 unless ``--steps``; not T
unrolled steps; the ``T mod K`` remainder runs eagerly). Reports

* the first gradient call of the eager and of the compiled model, and ``compile``: the first
  compiled call minus the median compiled call, i.e. what tracing and code generation add.
  Inductor's on-disk caches are off (``force_disable_caches``) unless ``--warm-cache``, so this is
  a first compilation, run in this process (``compile_threads = 1``); every time is given as
  wall-clock and as CPU time of this process and the C++ compiler runs it started (the machine
  may be shared: the CPU time does not count waiting for a core), with the load average;
* what dynamo made: graphs, graph breaks and recompilations (``torch._dynamo.utils.counters``);
* that a new horizon, with a remainder, compiles nothing
  (``torch._dynamo.config.error_on_recompile`` and the graph count);
* the median time of the gradient of ``mean(y^2)`` through the whole sequence, eager and compiled
  called alternately, and their ratio (> 1: the compiled gradient is faster).

    python benchmarks/torch_compile.py                    # the F-16 size, one torch thread
    python benchmarks/torch_compile.py --options '{"backend": "aot_eager"}'
    python benchmarks/torch_compile.py --batch 64
    python benchmarks/torch_compile.py --quick            # small sizes (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

import torch

import r2dn.torch as rt

F16 = {"nu": 2, "nx": 75, "nv": 75, "ny": 3, "hidden": (87, 87, 87), "batch": 4, "T": 256}
QUICK = {"nu": 2, "nx": 4, "nv": 4, "ny": 1, "hidden": (8,), "batch": 4, "T": 32}


def cpu_seconds() -> float:
    """CPU seconds of this process and of the finished processes it started (the C++ compiler)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def gradient(model: torch.nn.Module, x0: torch.Tensor, us: torch.Tensor) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one gradient of ``mean(y^2)`` w.r.t. all parameters."""
    model.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter(), cpu_seconds()
    _, ys = model(x0, us)
    (ys ** 2).mean().backward()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def load() -> str:
    """The 1-minute load average and the number of CPUs."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, help="batch size (default: the F-16 run's 4)")
    parser.add_argument("--options", default="{}", help="torch.compile options, as JSON")
    parser.add_argument("--steps", type=int, help="steps per compiled block (default: the "
                        "library's, r2dn.torch.rollout.BLOCK)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="let inductor reuse its on-disk caches from earlier runs")
    args = parser.parse_args()
    s = dict(QUICK if args.quick else F16)
    if args.batch:
        s["batch"] = args.batch
    torch.set_num_threads(args.threads)
    torch._inductor.config.force_disable_caches = not args.warm_cache
    torch._inductor.config.compile_threads = 1
    counters = torch._dynamo.utils.counters
    torch.manual_seed(0)
    make = lambda: rt.ContractingR2DN(s["nu"], s["nx"], s["nv"], s["ny"], hidden=s["hidden"],
                                      activation="relu", seed=0)
    eager, compiled = make(), make()
    compiled.compile(steps=args.steps, **json.loads(args.options))
    x0 = eager.init_state(s["batch"])
    us = torch.randn(s["T"], s["batch"], s["nu"])
    print(f"sizes: {s}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"compile options {args.options}, steps per block {args.steps or 'default'}; "
          f"on-disk caches {'on' if args.warm_cache else 'off'}")
    print(f"before: {load()}")

    eager_first = gradient(eager, x0, us)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    first = gradient(compiled, x0, us)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    compiler = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    print(f"after the first calls: {load()}")
    torch._dynamo.config.error_on_recompile = True
    graphs = counters["stats"]["unique_graphs"]
    gradient(compiled, x0, us[: s["T"] // 2 + 3])      # a new horizon: raises if it recompiles
    assert counters["stats"]["unique_graphs"] == graphs, "a new horizon made a new graph"
    times: dict[str, list[tuple[float, float]]] = {"eager": [], "compiled": []}
    for _ in range(args.repeats):
        times["eager"].append(gradient(eager, x0, us))
        times["compiled"].append(gradient(compiled, x0, us))
    med = {k: tuple(statistics.median(t[i] for t in v) for i in (0, 1)) for k, v in times.items()}
    breaks = sum(counters["graph_break"].values())
    recompiles = counters["recompiles"] if "recompiles" in counters else {}
    print(f"first eager gradient: {eager_first[0]:.2f} s wall, {eager_first[1]:.2f} s CPU")
    print(f"first compiled gradient: {first[0]:.2f} s wall, {first[1]:.2f} s CPU")
    print(f"compile (first compiled - median compiled): {first[0] - med['compiled'][0]:.1f} s wall, "
          f"{first[1] - med['compiled'][1]:.1f} s CPU, of which the C++ compiler's processes "
          f"{compiler:.1f} s")
    print(f"dynamo: {graphs} graph(s), {breaks} graph break(s), "
          f"{sum(recompiles.values())} recompilation(s); new horizon T={s['T'] // 2 + 3}: none")
    for i, kind in enumerate(("wall", "CPU")):
        e, c = med["eager"][i], med["compiled"][i]
        print(f"gradient median over {args.repeats} ({kind}): eager {e * 1e3:.1f} ms, compiled "
              f"{c * 1e3:.1f} ms, eager / compiled {e / c:.2f}")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
