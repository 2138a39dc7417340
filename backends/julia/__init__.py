"""r2dn and RobustNeuralNetworks.jl: read Julia-trained models without Julia, and a live bridge.

``import r2dn.julia`` needs neither Julia nor juliacall. It offers:

**Reading BSON.jl files** (no Julia): :func:`read_bson` (the safe reader of :mod:`.bson`) and
:func:`load_model`, which maps RobustNeuralNetworks.jl 0.3 models to r2dn models with
``compat="julia"`` in any backend (``backend=`` any name of :mod:`r2dn.backends`):

* ``DiffLBDN`` / ``LBDN`` / ``DenseLBDNParams`` -> ``LBDN`` (an explicit ``LBDN`` is inverted
  exactly by :func:`inverse_cayley`);
* ``DiffREN`` / ``WrapREN`` with ``ContractingRENParams``, ``LipschitzRENParams``,
  ``GeneralRENParams``, ``PassiveRENParams`` (or those bare) -> the REN of the same family;
  ``REN`` (explicit matrices only) -> an uncertified :class:`ExplicitREN`;
* a Flux ``Chain`` whose first layer is one of these -> that model, the rest reported in
  :class:`JuliaModelInfo` (``load_model(..., return_info=True)``; e.g. ``info.after == ("softmax",)``,
  applied by ``info.apply_after(y)``); a ``Chain`` of ``Dense`` layers -> an :class:`MLP`.

Names and shapes (see :mod:`r2dn.julia.convert`): Julia's fields map to r2dn's canonical names
(``ρ`` -> ``p`` only with ``polar_param``; ``ϵ`` -> ``eps``; ``αbar`` -> ``abar``; ``output_map=false``
-> ``identity_output=True``; ``D22_zero`` -> ``d22_zero=True``; LBDN ``XY/α/d/b`` tuples ->
``layers.<k>.{XY,a,d,b}``, ``log_γ`` -> ``gamma`` or, with ``learn_γ``, ``learn_gamma`` and
``log_gamma``), parameters keep Julia's index order, and signals are r2dn's batch-first
``(batch, n)`` where Julia's are ``(n, batch)``.

**Writing BSON.jl files** (no Julia): :func:`write_bson` writes r2dn RENs and LBDNs as
``DiffREN``/``DiffLBDN`` objects that Julia's ``BSON.load`` reads back.

**The live bridge** (juliacall + RobustNeuralNetworks.jl 0.3; :mod:`r2dn.julia.bridge`):
:func:`available` and :func:`reason` (an offline probe in a subprocess, with a timeout),
:func:`install` (the only function that downloads), :func:`to_julia`, :func:`simulate_in_julia`,
:func:`evaluate_in_julia` and :func:`compare`.

The data of the Julia examples (the MNIST idx reader, the reaction-diffusion PDE) live with the
examples, in ``r2dn_examples.datasets``.

>>> import numpy as np, r2dn.numpy as rn, r2dn.julia
>>> model = rn.ContractingREN(2, 3, 4, 1, compat="julia")
>>> r2dn.julia.julia_struct(model).type_name
'RobustNeuralNetworks.DiffREN'
>>> back = r2dn.julia.convert_value(r2dn.julia.julia_struct(model))
>>> back.config == model.config.replace(seed=0), sorted(back.direct) == sorted(model.direct())
(True, True)
"""

from .bson import read_bson

from .bridge import (JuliaUnavailableError, available, compare, evaluate_in_julia, install,
                     julia_call, reason, simulate_in_julia, to_julia)
from .convert import JULIA_ACTIVATIONS, Converted, convert_value, inverse_cayley, load_direct, \
    load_model
from .models import POST_FUNCTIONS, MLP, ExplicitREN, JuliaModelInfo, as_model_array
from .structs import check_julia_compatible, julia_struct
from .writer import write_bson

__all__ = [
    "JULIA_ACTIVATIONS", "MLP", "POST_FUNCTIONS", "Converted", "ExplicitREN", "JuliaModelInfo",
    "JuliaUnavailableError", "as_model_array", "available", "check_julia_compatible", "compare",
    "convert_value", "evaluate_in_julia", "install", "inverse_cayley", "julia_call",
    "julia_struct", "load_direct", "load_model", "read_bson", "reason", "simulate_in_julia",
    "to_julia", "write_bson",
]
