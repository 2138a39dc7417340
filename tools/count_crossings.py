#!/usr/bin/env python
# Usage (from the repo root): python tools/count_crossings.py [--backend torch jax numpy]
"""Core<->backend crossings in one warm model call, per call and per time step.

Rooms: core = r2dn/ (r2dn/*.py, r2dn/_spec/, r2dn/families/); backend = backends/<name>/ of the
backend measured. A *crossing* is a Python call whose caller's file and callee's file are in
different rooms (seen with sys.setprofile; frames of torch, JAX or the standard library belong to
no room and are skipped). A *hand-over* is a core->backend crossing made while no earlier
core->backend crossing is still running: control passing from the core into the backend. The
backend's own callbacks that core code runs inside a hand-over (the record's ``check_device``,
``rollout``, ``equilibrium``, the model's ``explicit``) are crossings but not hand-overs.

Three calls per model: ``simulate(x0, us)``, the sequence call ``model(x0, us)`` and one step
``model(x, u)``. Each is run warm at T=10 and at T=20: per step = (n20 - n10) / 10, per call =
n10 - 10 * per step. A jitted JAX call runs no Python below the jit boundary once compiled, so
its warm figures are the Python around it.
"""
import argparse
import collections
import os
import sys

import numpy as np

import r2dn
import r2dn.backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = [("LipschitzR2DN", (2, 3, 4, 1, (8,), 2.0)), ("ContractingREN", (2, 3, 4, 1))]


def room(filename, backend):
    path = os.path.abspath(filename)
    if path.startswith(os.path.join(ROOT, "backends", backend) + os.sep):
        return "backend"
    if path.startswith(os.path.join(ROOT, "r2dn") + os.sep):
        return "core"
    return None


def count(fn, backend):
    """Counter of (kind, callee name) for one call of ``fn`` (kind: ``hand-over``, or
    ``core->backend`` / ``backend->core`` for the other crossings)."""
    fn()                                              # warm: compile, caches
    counts = collections.Counter()
    active = set()                                    # frames entered by a core->backend crossing

    def prof(frame, event, arg):
        if event == "return":
            active.discard(id(frame))
            return
        if event != "call" or frame.f_back is None:
            return
        a, b = room(frame.f_back.f_code.co_filename, backend), room(frame.f_code.co_filename, backend)
        if not (a and b and a != b):
            return
        kind = f"{a}->{b}"
        if kind == "core->backend":
            f, nested = frame.f_back, False
            while f is not None and not nested:
                nested, f = id(f) in active, f.f_back
            active.add(id(frame))
            kind = kind if nested else "hand-over"
        counts[(kind, frame.f_code.co_name)] += 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return counts


def calls(model, backend, T):
    x0 = model.init_state(5)
    us = r2dn.backends.get(backend).from_numpy(np.zeros((T, 5, 2), dtype=model.config.dtype))
    return {"simulate": lambda: model.simulate(x0, us), "model(x0, us)": lambda: model(x0, us),
            "model(x, u)": lambda: model(x0, us[0])}


def report(backend):
    module = r2dn.backends.module(backend)
    for name, args in MODELS:
        model = getattr(module, name)(*args, seed=0)
        c10 = {k: count(f, backend) for k, f in calls(model, backend, 10).items()}
        c20 = {k: count(f, backend) for k, f in calls(model, backend, 20).items()}
        for what in c10:
            a, b = c10[what], c20[what]
            step = {k: (b[k] - a[k]) // 10 for k in b if b[k] != a[k]}
            call = {k: a[k] - 10 * step.get(k, 0) for k in a if a[k] - 10 * step.get(k, 0)}
            total = lambda d, *kinds: sum(v for k, v in d.items() if k[0] in kinds)
            print(f"{backend} {name} {what}: per call {total(call, 'hand-over')} hand-over(s), "
                  f"{total(call, 'hand-over', 'core->backend')} core->backend, "
                  f"{sum(call.values())} crossings; per time step "
                  f"{total(step, 'hand-over', 'core->backend')} core->backend, "
                  f"{sum(step.values())} crossings")
            for k, v in sorted(call.items()):
                print(f"    call {k[0]} {k[1]}: {v}")
            for k, v in sorted(step.items()):
                print(f"    step {k[0]} {k[1]}: {v}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", nargs="+", default=["torch", "jax", "numpy"])
    for b in parser.parse_args().backend:
        report(b)
