"""What r2dn's abstractions cost, and what the REN's implicit-function gradient saves.

1. **R2DN overhead.** ``model.simulate`` (forward without gradients, and the gradient of
   ``mean(x_T^2) + mean(y^2)``) against loops written by hand in the same framework over the same
   explicit matrices (``model.explicit()``, built inside the timed call in both cases):

   * ``hand_fused``: the same algorithm as the library with none of its layers: input terms for all
     steps in one product before the loop, the LBDN's adjacent linear maps multiplied out once,
     outputs in one product after the loop (torch: a Python loop; JAX: ``lax.scan``). This is the
     baseline of the target (library within 20 %).
   * ``hand_naive``: the loop a user would write first: each step applies every Sandwich layer
     (two products each) and every input and output product.

2. **REN gradient.** At nv = 200, the gradient through ``simulate`` with the backend's custom
   implicit-function-theorem backward pass (one triangular back-substitution per step) against the
   same model with its solver hook disabled, so autograd differentiates the nv-step forward
   substitution of ``r2dn._spec.equilibrium`` (target: the IFT version at least 3x faster).
   Reported as the whole gradient (forward + backward) and as the backward pass alone.

Times are medians of ``--repeats`` runs after warm-up. Sizes: the expressivity grid's (batch 64,
horizon 128, nu = nx = ny = 1, identity output) at its largest (REN nv = 200 tanh; R2DN nv = 16,
6 x 96 relu), and the F-16 R2DN (nu 2, nx 75, nv 75, LBDN 3 x 87, ny 3, batch 4, horizon 256).

    python benchmarks/overhead.py                 # both backends
    python benchmarks/overhead.py --backend torch --repeats 20
    python benchmarks/overhead.py --quick         # a smoke run (CI)
    python benchmarks/overhead.py --skip-ren      # the R2DN cases only
"""

from __future__ import annotations

import copy
import math

from r2dn_examples.threads import one_blas_thread

one_blas_thread()     # before NumPy loads a BLAS library (r2dn_examples.threads says why)

import numpy as np  # noqa: E402

from r2dn_examples.adapters import BACKEND_CHOICES, make_backend, num_params
from r2dn_examples.cli import benchmark_parser, progress
from r2dn_examples.results import write_results
from r2dn_examples.timing import cpu_load, time_call, time_interleaved

SQRT2 = math.sqrt(2.0)


def verdict(ok: bool, smoke: bool) -> str:
    """How a ratio compares with its target; a smoke run's tiny sizes give no verdict."""
    if smoke:
        return "smoke-run sizes, no verdict on the"
    return "meets the" if ok else "MISSES the"
R2DN_CASES = {
    "expressivity": dict(nu=1, nx=1, nv=16, ny=1, hidden=(96,) * 6, activation="relu",
                         identity_output=True, init="random", batch=64, horizon=128),
    "f16": dict(nu=2, nx=75, nv=75, ny=3, hidden=(87,) * 3, activation="relu",
                identity_output=False, init="long_memory", batch=4, horizon=256),
}
REN_CASE = dict(nu=1, nx=1, nv=200, ny=1, activation="tanh", identity_output=True, init="random",
                batch=64, horizon=128)
QUICK_R2DN = {"tiny": dict(nu=2, nx=3, nv=4, ny=2, hidden=(8, 8), activation="relu",
                           identity_output=False, init="long_memory", batch=4, horizon=16)}
QUICK_REN = dict(nu=1, nx=1, nv=12, ny=1, activation="tanh", identity_output=True, init="random",
                 batch=8, horizon=16)
TARGET_OVERHEAD = 1.2
TARGET_IFT_SPEEDUP = 3.0


def _model_kw(case):
    return {k: v for k, v in case.items() if k not in ("nu", "nx", "nv", "ny", "batch", "horizon")}


# -- the hand-written loops (operators only, so one step function serves torch and JAX) -------------

def _act(name, bk):
    """The framework's own activation (what a hand-written loop would call)."""
    if bk.name == "torch":
        return {"relu": bk.torch.relu, "tanh": bk.torch.tanh}[name]
    return {"relu": bk.jax.nn.relu, "tanh": bk.jnp.tanh}[name]


def fused_network(e):
    """The LBDN of an explicit R2DN with adjacent linear maps multiplied out, by hand."""
    net = e.network
    weights, biases, left = [], [], net.sqrt_gamma
    for k, L in enumerate(net.layers):
        inner = (SQRT2 / L.psi)[:, None] * L.B
        weights.append(inner * left if k == 0 else inner @ left)
        biases.append(L.b)
        left = SQRT2 * (L.A.T * L.psi[None, :])
    return weights, biases, (net.sqrt_gamma * net.output.B) @ left, net.output.b


def hand_fused_torch(model, x0, us, act):
    import torch
    e = model.explicit()
    Ws, bs, Wo, bo = fused_network(e)
    uv = us @ e.D12.T + e.bv
    ux = us @ e.B2.T + e.bx
    x, xs, ws = x0, [], []
    for t in range(us.shape[0]):
        h = x @ e.C1.T + uv[t]
        for W, b in zip(Ws, bs):
            h = act(h @ W.T + b)
        w = h @ Wo.T + bo
        xs.append(x)
        ws.append(w)
        x = x @ e.A.T + w @ e.B1.T + ux[t]
    ys = torch.stack(xs) @ e.C2.T + torch.stack(ws) @ e.D21.T + us @ e.D22.T + e.by
    return x, ys


def hand_fused_jax(model, x0, us, act):
    from jax import lax
    e = model.explicit()
    Ws, bs, Wo, bo = fused_network(e)
    uv = us @ e.D12.T + e.bv
    ux = us @ e.B2.T + e.bx

    def step(x, terms):
        uv_t, ux_t = terms
        h = x @ e.C1.T + uv_t
        for W, b in zip(Ws, bs):
            h = act(h @ W.T + b)
        w = h @ Wo.T + bo
        return x @ e.A.T + w @ e.B1.T + ux_t, (x, w)

    x, (xs, ws) = lax.scan(step, x0, (uv, ux))
    return x, xs @ e.C2.T + ws @ e.D21.T + us @ e.D22.T + e.by


def naive_step(e, act, x, u):
    """One step as first written: every Sandwich layer (two products), every input product."""
    net = e.network
    v = x @ e.C1.T + u @ e.D12.T + e.bv
    h = net.sqrt_gamma * v
    for L in net.layers:
        h = SQRT2 * ((act(SQRT2 * (h @ L.B.T) / L.psi + L.b) * L.psi) @ L.A)
    w = net.sqrt_gamma * (h @ net.output.B.T) + net.output.b
    y = x @ e.C2.T + w @ e.D21.T + u @ e.D22.T + e.by
    return x @ e.A.T + w @ e.B1.T + u @ e.B2.T + e.bx, y


def hand_naive_torch(model, x0, us, act):
    import torch
    e = model.explicit()
    x, ys = x0, []
    for t in range(us.shape[0]):
        x, y = naive_step(e, act, x, us[t])
        ys.append(y)
    return x, torch.stack(ys)


def hand_naive_jax(model, x0, us, act):
    from jax import lax
    e = model.explicit()
    return lax.scan(lambda x, u: naive_step(e, act, x, u), x0, us)


def without_solver(model, bk):
    """The same model (shared parameters) with the custom equilibrium solver hook disabled, so
    ``simulate`` differentiates ``r2dn._spec.equilibrium``'s nv-step loop by autograd."""
    cls = type(model)
    sub = type(cls.__name__ + "Unrolled", (cls,), {"_solver": lambda self: None,
                                                   "__module__": __name__})
    if bk.name == "jax":
        leaves, aux = model._tree_flatten()
        return sub._tree_unflatten(aux, leaves)
    clone = copy.copy(model)
    clone.__class__ = sub
    return clone


def loss_of(sim):
    def loss(model, x0, us):
        xT, ys = sim(model, x0, us)
        return (xT**2).mean() + (ys**2).mean()
    return loss


def backward_only(bk, models, loss, x0, us, repeats):
    """Time the backward pass alone, round-robin over ``models`` ({name: model}): torch
    ``autograd.grad`` after an untimed forward; JAX the ``vjp`` function of a jitted forward,
    applied under ``jit``."""
    import time
    if bk.name == "jax":
        jax = bk.jax
        x0, us = bk.commit((x0, us))
        apply = jax.jit(lambda f, ct: f(ct))
        fns = {}
        for k, m in models.items():
            value, f_vjp = jax.jit(lambda mm: jax.vjp(lambda p: loss(p, x0, us), mm))(bk.commit(m))
            fns[k] = (lambda f=f_vjp, one=jax.numpy.ones_like(value): apply(f, one))
        return time_interleaved(fns, repeats, bk.sync)
    names = list(models)
    params = {k: [p for p in m.parameters() if p.requires_grad] for k, m in models.items()}
    out = {k: {"times": []} for k in names}
    for r in range(repeats + 1):
        for k in names[r % len(names):] + names[:r % len(names)]:
            value = loss(models[k], x0, us)
            t0 = time.perf_counter()
            bk.torch.autograd.grad(value, params[k])
            if r:
                out[k]["times"].append(time.perf_counter() - t0)
    for v in out.values():
        v.update(median=float(np.median(v["times"])), min=float(np.min(v["times"])),
                 max=float(np.max(v["times"])))
    return out


def r2dn_case(bk, name, case, repeats, seed):
    rng = np.random.default_rng(seed)
    model = bk.rn.ContractingR2DN(case["nu"], case["nx"], case["nv"], case["ny"], seed=seed,
                                  dtype="float32", **_model_kw(case))
    x0 = bk.asarray(rng.standard_normal((case["batch"], case["nx"])))
    us = bk.asarray(rng.standard_normal((case["horizon"], case["batch"], case["nu"])))
    act = _act(case["activation"], bk)
    hand = {"torch": (hand_fused_torch, hand_naive_torch),
            "jax": (hand_fused_jax, hand_naive_jax)}[bk.name]
    sims = {"library": lambda m, a, b: m.simulate(a, b),
            "hand_fused": lambda m, a, b: hand[0](m, a, b, act),
            "hand_naive": lambda m, a, b: hand[1](m, a, b, act)}
    # the three compute the same outputs
    ref = bk.numpy(bk.forward_callable(sims["library"], model, x0, us)()[1])
    agree = {k: float(np.max(np.abs(bk.numpy(bk.forward_callable(f, model, x0, us)()[1]) - ref)))
             for k, f in sims.items() if k != "library"}
    out = {"num_params": num_params(model), "max_abs_diff_vs_library": agree}
    fwd = time_interleaved({k: bk.forward_callable(f, model, x0, us) for k, f in sims.items()},
                           repeats, bk.sync)
    grad = time_interleaved({k: bk.grad_callable(model, loss_of(f), x0, us)
                             for k, f in sims.items()}, repeats, bk.sync)
    for k in sims:
        out[k] = {"forward": fwd[k], "gradient": grad[k]}
    for pas in ("forward", "gradient"):
        for base in ("hand_fused", "hand_naive"):
            out[f"{pas}_library_over_{base}"] = (out["library"][pas]["median"]
                                                 / out[base][pas]["median"])
    return out


def ren_case(bk, case, repeats, seed):
    rng = np.random.default_rng(seed)
    model = bk.rn.ContractingREN(case["nu"], case["nx"], case["nv"], case["ny"], seed=seed,
                                 dtype="float32", **_model_kw(case))
    unrolled = without_solver(model, bk)
    x0 = bk.asarray(rng.standard_normal((case["batch"], case["nx"])))
    us = bk.asarray(rng.standard_normal((case["horizon"], case["batch"], case["nu"])))
    loss = loss_of(lambda m, a, b: m.simulate(a, b))
    g_ift = bk.grad_callable(model, loss, x0, us)
    g_unr = bk.grad_callable(unrolled, loss, x0, us)
    diff = max(float(np.max(np.abs(bk.numpy(a) - bk.numpy(b))))
               for a, b in zip(_leaves(bk, g_ift()), _leaves(bk, g_unr())))
    scale = max(float(np.max(np.abs(bk.numpy(a)))) for a in _leaves(bk, g_ift()))
    out = {"num_params": num_params(model), "gradient_max_abs_diff": diff,
           "gradient_max_abs": scale}
    grad = time_interleaved({"ift": g_ift, "unrolled": g_unr}, repeats, bk.sync)
    bwd = backward_only(bk, {"ift": model, "unrolled": unrolled}, loss, x0, us, repeats)
    fwd = time_call(bk.forward_callable(lambda m, a, b: m.simulate(a, b), model, x0, us),
                    repeats, bk.sync)
    out["ift"] = {"gradient": grad["ift"], "backward": bwd["ift"], "forward": fwd}
    out["unrolled"] = {"gradient": grad["unrolled"], "backward": bwd["unrolled"]}
    out["gradient_unrolled_over_ift"] = (out["unrolled"]["gradient"]["median"]
                                         / out["ift"]["gradient"]["median"])
    out["backward_unrolled_over_ift"] = (out["unrolled"]["backward"]["median"]
                                         / out["ift"]["backward"]["median"])
    return out


def _leaves(bk, grads):
    if bk.name == "jax":
        return bk.jax.tree.leaves(grads)
    return list(grads)


def main(argv: list[str] | None = None) -> dict:
    p = benchmark_parser(__doc__.splitlines()[0], default_out="overhead",
                         repeats_help="timed runs (default 10; --quick 3)")
    p.add_argument("--skip-ren", action="store_true",
                   help="time only the R2DN cases (the REN case is the longest)")
    args = p.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 10)
    backends = BACKEND_CHOICES if args.backend == "both" else (args.backend,)
    r2dn_cases = QUICK_R2DN if args.quick else R2DN_CASES
    ren = QUICK_REN if args.quick else REN_CASE
    load_before = cpu_load()

    results, infos = {}, {}
    for name in progress(backends, args, desc="backends"):
        bk = make_backend(name, args.threads)
        infos[name] = bk.info()
        res = {f"r2dn_{k}": r2dn_case(bk, k, c, repeats, args.seed) for k, c in r2dn_cases.items()}
        if not args.skip_ren:
            res["ren"] = ren_case(bk, ren, repeats, args.seed)
        results[name] = res

    figures, lines = {}, []
    for name, res in results.items():
        for k in r2dn_cases:
            r = res[f"r2dn_{k}"]
            for pas in ("forward", "gradient"):
                ratio = r[f"{pas}_library_over_hand_fused"]
                figures[f"{name}/r2dn_{k}/{pas}_library_over_hand_fused"] = ratio
                figures[f"{name}/r2dn_{k}/{pas}_library_over_hand_naive"] = \
                    r[f"{pas}_library_over_hand_naive"]
                lines.append(
                    f"{name} R2DN {k} ({r['num_params']} params) {pas}: library "
                    f"{1e3 * r['library'][pas]['median']:.2f} ms, hand fused "
                    f"{1e3 * r['hand_fused'][pas]['median']:.2f} ms, hand naive "
                    f"{1e3 * r['hand_naive'][pas]['median']:.2f} ms -> library / hand fused "
                    f"{ratio:.3f} ({verdict(ratio <= TARGET_OVERHEAD, args.quick)} target <= "
                    f"{TARGET_OVERHEAD})")
        if "ren" not in res:
            continue
        r = res["ren"]
        for pas in ("gradient", "backward"):
            ratio = r[f"{pas}_unrolled_over_ift"]
            figures[f"{name}/ren_nv{ren['nv']}/{pas}_unrolled_over_ift"] = ratio
            lines.append(
                f"{name} REN nv={ren['nv']} {pas}: IFT {1e3 * r['ift'][pas]['median']:.2f} ms, "
                f"unrolled {1e3 * r['unrolled'][pas]['median']:.2f} ms -> unrolled / IFT "
                f"{ratio:.2f} ({verdict(ratio >= TARGET_IFT_SPEEDUP, args.quick)} target >= "
                f"{TARGET_IFT_SPEEDUP})")
        figures[f"{name}/ren_nv{ren['nv']}/gradient_max_abs_diff"] = r["gradient_max_abs_diff"]
    print("\n".join(lines))
    figures["cpu_load_before"], figures["cpu_load_after"] = load_before, cpu_load()
    devs = ["quick sizes (CI smoke run)"] if args.quick else []
    write_results(args.out, "benchmarks/overhead.py", args,
                  {"repeats": repeats, "backends": list(backends), "r2dn_cases": r2dn_cases,
                   "ren_case": ren, "targets": {"library_over_hand_fused_max": TARGET_OVERHEAD,
                                                "unrolled_over_ift_min": TARGET_IFT_SPEEDUP},
                   "backend_info": infos},
                  devs, figures, extra={"details": results, "summary": lines})
    return figures


if __name__ == "__main__":
    main()
