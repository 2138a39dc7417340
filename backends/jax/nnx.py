"""Flax NNX interop: an r2dn JAX model as an ``nnx.Module`` (needs the ``r2dn[flax]`` extra).

NNX modules hold their state in ``nnx.Variable`` attributes; an r2dn model is an immutable pytree,
so assigning one to a module attribute is refused. :func:`wrap` returns a :class:`Module` whose
``nnx.Param``\\ s are the model's free parameters, keyed by their canonical names in
``module.params``; calling it (or ``.simulate``) rebuilds the r2dn model from the current values,
so every formula, shape check and compiled entry point is the model's own.

>>> import optax
>>> from flax import nnx
>>> import r2dn.jax as rn
>>> from r2dn.jax.nnx import wrap
>>> module = wrap(rn.ContractingR2DN(2, 3, 4, 1, hidden=(8,), seed=0))
>>> opt = nnx.Optimizer(module, optax.adam(1e-3), wrt=nnx.Param)
>>> sorted(nnx.state(module, nnx.Param)["params"])[:3]
['B1', 'B2', 'C1']
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from .models import JaxModel, from_direct


class Module(nnx.Module):
    """An r2dn JAX model as an ``nnx.Module``; build it with :func:`wrap`.

    Attributes
    ----------
    config : ModelConfig
        The model's config (static).
    params : nnx.Dict
        ``nnx.Param`` per free parameter, keyed by canonical name (``"network.layers.0.XY"``).
    """

    def __init__(self, model: JaxModel) -> None:
        if not isinstance(model, JaxModel):
            raise TypeError("r2dn.jax.nnx.wrap: expected a model of r2dn.jax; got "
                            f"{type(model).__name__} (convert it with r2dn.jax.convert first).")
        self.config = model.config
        self.params = nnx.Dict({name: nnx.Param(value) for name, value in model.direct().items()})

    def unwrap(self) -> Any:
        """The r2dn model with the current parameter values (to certify, save or convert)."""
        return from_direct(self.config, {name: p[...] for name, p in self.params.items()})

    def __call__(self, *args: Any) -> Any:
        """``model(x, u)`` (one step) or ``model(u)`` (feed-forward) of the wrapped model."""
        return self.unwrap()(*args)

    def simulate(self, x0: Any, us: Any, **options: Any) -> tuple[Any, Any]:
        """``model.simulate(x0, us, **options)`` of a recurrent model."""
        return self.unwrap().simulate(x0, us, **options)

    def init_state(self, batch: int) -> Any:
        """``model.init_state(batch)``: the zero state."""
        return self.unwrap().init_state(batch)


def wrap(model: JaxModel) -> Module:
    """``model`` (of :mod:`r2dn.jax`) as a Flax NNX module whose ``nnx.Param``\\ s are its free
    parameters; train it with ``nnx.Optimizer(module, tx, wrt=nnx.Param)``, and get the r2dn model
    back with ``module.unwrap()``."""
    return Module(model)
