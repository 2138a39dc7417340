"""Every bad argument of issue 2 item 5 raises, with a message naming the argument and value."""

from __future__ import annotations

import numpy as np
import pytest

import r2dn.numpy as rn
from r2dn.config import ModelConfig

GOOD_Q, GOOD_S, GOOD_R = -np.eye(2), np.zeros((3, 2)), np.eye(3)


@pytest.mark.parametrize("call, match", [
    (lambda: rn.ContractingREN(0, 3, 4, 2), r"`nu` must be a positive integer; got nu=0"),
    (lambda: rn.ContractingREN(2, 3.5, 4, 2), r"`nx` must be a positive integer; got nx=3.5"),
    (lambda: rn.ContractingR2DN(2, 3, -1, 2, (3,)), r"`nv` must be a positive integer; got nv=-1"),
    (lambda: rn.ContractingREN(2, 3, 4, True), r"`ny` must be a positive integer; got ny=True"),
    (lambda: rn.ContractingR2DN(2, 3, 4, 2, (3, 0)), r"`hidden` must hold positive integers"),
    (lambda: rn.LBDN(0, (3,), 2), r"`in_features` must be a positive integer"),
    (lambda: rn.LipschitzREN(2, 3, 4, 2, 0.0), r"`gamma` must be a finite number > 0; got gamma=0.0"),
    (lambda: rn.LipschitzR2DN(2, 3, 4, 2, (3,), -1.0), r"`gamma` must be a finite number > 0"),
    (lambda: rn.LBDN(2, (3,), 2, float("inf")), r"`gamma` must be a finite number > 0; got gamma=inf"),
    (lambda: rn.ContractingREN(2, 3, 4, 2, abar=1.5), r"`abar` must satisfy 0 < abar <= 1; got abar=1.5"),
    (lambda: rn.ContractingR2DN(2, 3, 4, 2, (3,), abar=0.0), r"`abar` must satisfy 0 < abar <= 1"),
    (lambda: rn.GeneralREN(3, 3, 4, 2, np.eye(2), GOOD_S, GOOD_R), r"`Q` must be negative definite"),
    (lambda: rn.GeneralR2DN(3, 3, 4, 2, (2,), GOOD_Q, GOOD_S, -np.eye(3)),
     r"`R - S Q\^-1 S\^T` must be positive definite"),
    (lambda: rn.GeneralREN(3, 3, 4, 2, -np.eye(3), GOOD_S, GOOD_R), r"`Q` must have shape \(2, 2\)"),
    (lambda: rn.GeneralREN(3, 3, 4, 2, GOOD_Q, np.zeros((2, 3)), GOOD_R), r"`S` must have shape \(3, 2\)"),
    (lambda: rn.GeneralREN(3, 3, 4, 2, GOOD_Q, GOOD_S, np.eye(2)), r"`R` must have shape \(3, 3\)"),
    (lambda: rn.GeneralREN(3, 3, 4, 2, GOOD_Q, GOOD_S, [[1, 2, 0], [0, 1, 0], [0, 0, 1]]),
     r"`R` must be symmetric"),
    (lambda: rn.PassiveREN(2, 3, 4, 3), r"PassiveREN: needs nu == ny; got nu=2, ny=3"),
    (lambda: rn.PassiveREN(2, 3, 4, 2, nu_index=1.0, rho_index=1.0), r"nu_index \* rho_index < 1/4"),
    (lambda: rn.ContractingREN(2, 3, 4, 2, activation="gelu"), r"`activation` must be one of .* got 'gelu'"),
    (lambda: rn.ContractingREN(2, 3, 4, 2, init="zeros"), r"`init` must be one of .* got init='zeros'"),
    (lambda: rn.ContractingREN(2, 3, 4, 2, compat="flax"), r"`compat` must be None, 'julia' or 'robustnn'"),
    (lambda: rn.ContractingREN(2, 3, 4, 2, dtype="float16"), r"`dtype` must be 'float32' or 'float64'"),
    (lambda: rn.ContractingREN(2, 3, 4, 2, eps=-1.0), r"`eps` must be a finite number > 0"),
    (lambda: rn.LipschitzREN(2, 3, 4, 2, 1.0, identity_output=True), r"unexpected keyword"),
    (lambda: rn.ContractingREN(2, 3, 4, 2, identity_output=True), r"needs ny == nx; got ny=2, nx=3"),
    (lambda: ModelConfig.from_json('{"model": "LBDN", "bogus": 1}'), r"unknown config keys \['bogus'\]"),
    (lambda: ModelConfig.from_json("{not json"), r"not valid JSON"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.fixture(scope="module")
def ren():
    return rn.ContractingREN(2, 3, 4, 1)


@pytest.mark.parametrize("args, exc, match", [
    ((np.zeros((5, 4)), np.zeros((5, 2))), ValueError, r"`x` must have shape \(batch, nx\) with nx=3; got \(5, 4\)"),
    ((np.zeros((5, 3)), np.zeros((4, 2))), ValueError, r"`u` must have shape \(batch, nu\) = \(5, 2\); got \(4, 2\)"),
    ((np.zeros(3), np.zeros(2)), ValueError, r"`x` must have shape"),
    ((np.zeros((5, 3), dtype=np.int64), np.zeros((5, 2))), TypeError, r"`x` must be a floating array .* got dtype int64"),
    ((np.zeros((5, 3), dtype=np.float32), np.zeros((5, 2))), TypeError, r"`x` has dtype float32 but the model is float64"),
    (([[0.0] * 3], np.zeros((1, 2))), TypeError, r"`x` must be an array; got list"),
])
def test_bad_step_inputs_raise(ren, args, exc, match):
    with pytest.raises(exc, match=match):
        ren(*args)


def test_bad_simulate_inputs_raise(ren):
    with pytest.raises(ValueError, match=r"`us` must have shape \(T, batch, nu\) with batch=5, nu=2; got \(7, 5, 3\)"):
        ren.simulate(np.zeros((5, 3)), np.zeros((7, 5, 3)))
    with pytest.raises(ValueError, match=r"at least one time step; got T=0"):
        ren.simulate(np.zeros((5, 3)), np.zeros((0, 5, 2)))
    with pytest.raises(ValueError, match=r"`batch` must be a positive integer; got 0"):
        ren.init_state(0)


def test_bad_direct_parameters_raise():
    model = rn.ContractingR2DN(2, 3, 4, 2, (3,))
    d = model.direct()
    with pytest.raises(ValueError, match=r"parameter `X` must have shape \(6, 6\); got \(5, 5\)"):
        rn.from_direct(model.config, d | {"X": np.zeros((5, 5))})
    with pytest.raises(ValueError, match=r"do not match the expected names"):
        rn.from_direct(model.config, {k: v for k, v in d.items() if k != "Y"})


def test_config_json_round_trip_and_custom_activation_refused():
    model = rn.GeneralR2DN(3, 2, 4, 2, (5, 3), GOOD_Q, GOOD_S, GOOD_R, abar=0.8, seed=7)
    again = ModelConfig.from_json(model.config.to_json())
    assert again == model.config and hash(again) == hash(model.config)
    custom = rn.ContractingREN(2, 3, 4, 2, activation=np.tanh)
    with pytest.raises(TypeError, match="custom activation callable"):
        custom.config.to_json()
