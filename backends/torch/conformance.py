"""The torch backend's adapter for the conformance suite (:mod:`r2dn.conformance.backends`):
eager evaluation, gradients by ``loss.backward()``."""

from __future__ import annotations

import numpy as np

from r2dn.conformance.backends import Adapter, Outputs, call_gain, dtype_names, explicit_dict, \
    np64


class TorchAdapter(Adapter):
    name = "torch"
    autodiff = True
    computes = ("explicit", "step", "rollout", "grad")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        import torch
        import r2dn.torch as rt
        self.torch, self.rt = torch, rt
        self.dev = torch.device(device)
        if self.dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"torch has no CUDA device here (asked for device={device!r})")

    def describe(self):
        t = self.torch
        prec = t.get_float32_matmul_precision()
        extra = ""
        if self.dev.type == "cuda":
            extra = (f", {t.cuda.get_device_name(self.dev)}, "
                     f"allow_tf32={t.backends.cuda.matmul.allow_tf32}")
        return f"torch {t.__version__} on {self.dev} (float32 matmul precision {prec!r}{extra})"

    def build(self, config, direct):
        return self.rt.from_direct(config, direct, device=self.dev)

    def _t(self, a, dtype):
        return None if a is None else self.torch.tensor(np.asarray(a, dtype=dtype), device=self.dev)

    def evaluate(self, model, inputs):
        torch = self.torch
        c = model.config
        params = dict(model.named_parameters())
        for p in params.values():
            p.grad = None
        with torch.no_grad():
            e = explicit_dict(model)
        x0, us, x, u = (self._t(a, c.dtype) for a in (inputs.x0, inputs.us, inputs.x, inputs.u))
        wy, wx = self._t(inputs.wy, c.dtype), self._t(inputs.wx, c.dtype)
        if not c.is_recurrent:
            y = model(u)
            loss = torch.sum(wy * y)
            step, roll, raw = None, (None, np64(y)), (e, y)
        else:
            with torch.no_grad():
                s = model(x, u)
            xT, ys = model.simulate(x0, us)
            loss = torch.sum(wy * ys) + torch.sum(wx * xT)
            step, roll, raw = tuple(map(np64, s)), (np64(xT), np64(ys)), (e, s, xT, ys)
        loss.backward()
        grads = {k: (np64(p.grad) if p.grad is not None else np.zeros(tuple(p.shape)))
                 for k, p in params.items()}
        return Outputs({k: np64(v) for k, v in e.items()}, step, roll, grads, dtype_names(*raw))

    def adversarial_gain(self, model, *, steps, horizon, batch, seed):
        return call_gain(self.rt.empirical_gain, model, steps=steps, horizon=horizon,
                          batch=batch, seed=seed)
