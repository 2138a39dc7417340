#!/usr/bin/env python
# Usage (from the repo root): python tools/count_crossings.py
"""Core<->backend crossings in one torch simulate, split into per call and per time step.

A crossing is a Python call whose caller's file and callee's file are in different rooms:
core = r2dn/ (r2dn/*.py, r2dn/_spec/), backend = backends/torch/. Counted with sys.setprofile
over one warm simulate at T=10 and at T=20: per step = (n20 - n10) / 10, per call = n10 - 10 * per step.
"""
import collections, os, sys
import torch
import r2dn.torch as rt
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(rt.__file__))))
def room(fn):
    fn = os.path.abspath(fn)
    if fn.startswith(os.path.join(root, "backends", "torch") + os.sep): return "backend"
    if fn.startswith(os.path.join(root, "r2dn") + os.sep): return "core"
def count(m, T):
    x0, us = m.init_state(5), torch.zeros(T, 5, 2)
    m.simulate(x0, us)
    c = collections.Counter()
    def prof(frame, event, arg):
        if event != "call" or frame.f_back is None: return
        a, b = room(frame.f_back.f_code.co_filename), room(frame.f_code.co_filename)
        if a and b and a != b: c[(f"{a}->{b}", frame.f_code.co_name)] += 1
    sys.setprofile(prof); m.simulate(x0, us); sys.setprofile(None)
    return c
for name, args in [("LipschitzR2DN", (2, 3, 4, 1, (8,), 2.0)), ("ContractingREN", (2, 3, 4, 1))]:
    m = getattr(rt, name)(*args, seed=0)
    c10, c20 = count(m, 10), count(m, 20)
    step = {k: (c20[k] - c10[k]) // 10 for k in c20 if c20[k] != c10[k]}
    call = {k: c10[k] - 10 * step.get(k, 0) for k in c10 if c10[k] - 10 * step.get(k, 0)}
    cb = lambda d: sum(v for k, v in d.items() if k[0] == "core->backend")
    print(f"{name}: per call {sum(call.values())} crossings ({cb(call)} core->backend); "
          f"per time step {sum(step.values())} ({cb(step)} core->backend)")
    for k, v in sorted(call.items()): print(f"    call {k[0]} {k[1]}: {v}")
    for k, v in sorted(step.items()): print(f"    step {k[0]} {k[1]}: {v}")
