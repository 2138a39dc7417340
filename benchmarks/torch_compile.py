"""torch.compile of an r2dn model: compile time and the compiled gradient against eager.

The F-16 R2DN (nu 2, nx 75, nv 75, LBDN 3 x 87 relu, ny 3, batch 4, horizon 256, float32) is
compiled with ``model.compile()``, which compiles the recurrent cell (not T unrolled steps). Reports

* ``compile_s``: the first compiled gradient call (tracing, code generation, one step's run) minus
  an eager gradient call, i.e. the time compilation adds;
* the median time of the gradient of ``mean(y^2)`` through the whole sequence, eager and compiled,
  and their ratio (> 1: the compiled gradient is faster);
* that a new horizon compiles nothing (``torch._dynamo.config.error_on_recompile``).

    python benchmarks/torch_compile.py               # the F-16 size
    python benchmarks/torch_compile.py --quick       # small sizes (a smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import r2dn.torch as rt

F16 = {"nu": 2, "nx": 75, "nv": 75, "ny": 3, "hidden": (87, 87, 87), "batch": 4, "T": 256}
QUICK = {"nu": 2, "nx": 4, "nv": 4, "ny": 1, "hidden": (8,), "batch": 4, "T": 32}


def gradient(model: torch.nn.Module, x0: torch.Tensor, us: torch.Tensor) -> float:
    """Seconds for one gradient of ``mean(y^2)`` w.r.t. all parameters."""
    model.zero_grad(set_to_none=True)
    t = time.perf_counter()
    _, ys = model(x0, us)
    (ys ** 2).mean().backward()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    s = QUICK if args.quick else F16
    torch.manual_seed(0)
    make = lambda: rt.ContractingR2DN(s["nu"], s["nx"], s["nv"], s["ny"], hidden=s["hidden"],
                                      activation="relu", seed=0)
    eager, compiled = make(), make()
    compiled.compile()
    x0 = eager.init_state(s["batch"])
    us = torch.randn(s["T"], s["batch"], s["nu"])

    eager_first = gradient(eager, x0, us)
    first = gradient(compiled, x0, us)
    torch._dynamo.config.error_on_recompile = True
    gradient(compiled, x0, us[: s["T"] // 2])          # a new horizon: raises if it recompiles
    t_eager = [gradient(eager, x0, us) for _ in range(args.repeats)]
    t_comp = [gradient(compiled, x0, us) for _ in range(args.repeats)]
    e, c = statistics.median(t_eager), statistics.median(t_comp)
    print(f"sizes: {s}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"compile_s (first compiled gradient - first eager gradient): {first - eager_first:.1f}")
    print(f"new horizon T={s['T'] // 2}: no recompilation")
    print(f"gradient median over {args.repeats}: eager {e * 1e3:.1f} ms, compiled {c * 1e3:.1f} ms, "
          f"speed-up {e / c:.2f}x")


if __name__ == "__main__":
    main()
