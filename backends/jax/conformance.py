"""The JAX backend's adapter for the conformance suite (:mod:`r2dn.conformance.backends`): one
``jax.jit`` of the whole evaluation per configuration, with 64-bit mode inside the suite only."""

from __future__ import annotations

import contextlib

import numpy as np

import r2dn
from r2dn import _spec
from r2dn.conformance.backends import Adapter, ExplicitView, Outputs, call_gain, dtype_names, \
    np64

from .rollout import CPU_FAST_COMPILE_OPTIONS


def _jax_eval(model, x0, us, x, u, wy, wx):
    """Everything the checks need from a JAX model, in one traced function (jitted by the adapter).

    The explicit matrices and the step are traced outside the differentiated function, so only
    the rollout (or the forward map) is traced under ``jax.value_and_grad``; XLA shares the
    explicit map between them.
    """
    import jax
    import jax.numpy as jnp

    c = model.config
    e = model.explicit()
    if not c.is_recurrent:
        def loss(m):
            y = m(u)
            return jnp.sum(wy * y), (y,)
        step = None
    else:
        def loss(m):
            xT, ys = m.simulate(x0, us)
            return jnp.sum(wy * ys) + jnp.sum(wx * xT), (xT, ys)
        step = model(x, u)
    (_, roll), g = jax.value_and_grad(loss, has_aux=True)(model)
    return e, step, roll, g.direct()


class JaxAdapter(Adapter):
    name = "jax"
    autodiff = True
    computes = ("explicit", "step", "rollout", "grad")

    def __init__(self, device: str = "cpu", fast_compile: bool = True) -> None:
        super().__init__(device)
        import jax
        import r2dn.jax as rj
        self.jax, self.rj = jax, rj
        kind, _, index = device.partition(":")
        platform_name = {"cuda": "gpu", "gpu": "gpu", "cpu": "cpu", "tpu": "tpu"}.get(kind, kind)
        try:
            devices = jax.devices(platform_name)
        except RuntimeError as err:
            raise RuntimeError(f"JAX has no {platform_name!r} device here ({err})") from err
        self.dev = devices[int(index or 0)]
        options = CPU_FAST_COMPILE_OPTIONS if fast_compile and self.dev.platform == "cpu" else None
        self.compile_options = options
        self._eval = jax.jit(_jax_eval, compiler_options=options)

    def describe(self):
        how = "fast-compile options" if self.compile_options else "default XLA options"
        return (f"jax {self.jax.__version__} on {self.dev} (x64 inside the suite only, "
                f"matmul precision {self.rj.MATMUL_PRECISION!r}, {how})")

    def context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(self.jax.enable_x64(True))
        stack.enter_context(self.jax.default_device(self.dev))
        return stack

    def build(self, config, direct):
        model = self.rj.from_direct(config, direct)
        return self.jax.device_put(model, self.dev)

    def evaluate(self, model, inputs):
        jnp = self.jax.numpy
        c = model.config
        args = [None if a is None else self.jax.device_put(jnp.asarray(np.asarray(a, dtype=c.dtype)),
                                                           self.dev)
                for a in (inputs.x0, inputs.us, inputs.x, inputs.u, inputs.wy, inputs.wx)]
        tree, step, roll, grads = self._eval(model, *args)
        self.jax.block_until_ready(grads)
        e = _spec.flatten_explicit(tree)
        rollout = (None, np64(roll[0])) if not c.is_recurrent else tuple(map(np64, roll))
        return Outputs({k: np64(v) for k, v in e.items()},
                       None if step is None else tuple(map(np64, step)), rollout,
                       {k: np64(v) for k, v in grads.items()}, dtype_names(e, step, roll, grads),
                       tree)

    def certify(self, model, out):
        """``r2dn.certify`` of the model's explicit matrices as the jitted evaluation built them.

        The same function of the same parameters as ``model.explicit()``, which, called eagerly,
        dispatches the maps op by op and costs seconds of XLA compilation per case on a CPU.
        """
        return r2dn.certify(ExplicitView(model.config, out.explicit_tree))

    def adversarial_gain(self, model, *, steps, horizon, batch, seed):
        return call_gain(self.rj.empirical_gain, model, steps=steps, horizon=horizon,
                          batch=batch, seed=seed)

    def release(self):
        """Drop every compiled program: each case compiles new ones, and on a CPU each holds
        memory mappings of JIT code; a few hundred cases in one process otherwise exhaust the
        mappings (LLVM "Cannot allocate memory", then a crash)."""
        self.jax.clear_caches()
