"""compat="robustnn" against reference vectors produced by the authors' own JAX code (float64).

The oracle is the authors' implementation (``../shared/data/robustnn``): explicit matrices, one
step and a rollout. Skips when the data folder is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import r2dn.numpy as rn
from r2dn import _spec
from r2dn.robustnn import direct_from_robustnn

from helpers import assert_close, data_dir

DATA = data_dir("robustnn")
pytestmark = pytest.mark.skipif(DATA is None, reason="../shared/data/robustnn not found (set R2DN_DATA)")
FILES = sorted(p.stem for p in DATA.glob("*.npz")) if DATA else []


def _model(npz):
    cfg = json.loads(str(npz["config"]))
    name = cfg.pop("model")
    kw = {**cfg, "compat": "robustnn", "dtype": "float64"}
    if name == "LBDN":
        args = [kw.pop(k) for k in ("in_features", "hidden", "out_features", "gamma")]
    else:
        args = [kw.pop(k) for k in ("nu", "nx", "nv", "ny")]
        args += [kw.pop(k) for k in ("hidden", "gamma", "Q", "S", "R") if k in kw]
    template = getattr(rn, name)(*args, **kw)
    tree = {k[len("param:"):]: npz[k] for k in npz.files if k.startswith("param:")}
    return rn.from_direct(template.config, direct_from_robustnn(tree, template.config))


def _their_explicit(npz):
    out = {}
    for k in npz.files:
        if not k.startswith("explicit:"):
            continue
        name = k[len("explicit:"):].replace("network_params/", "network.").replace("/", ".")
        if name.endswith(".A_T"):
            out[name[:-4] + ".A"] = npz[k].T
        elif name.endswith(".psi_d"):
            out[name[:-6] + ".psi"] = npz[k]
        elif not name.endswith("log_gamma"):
            out[name] = npz[k]
    return out


@pytest.mark.parametrize("name", FILES)
def test_matches_authors_reference(name):
    npz = np.load(DATA / f"{name}.npz")
    model = _model(npz)
    ours = _spec.flatten_explicit(model.explicit())
    theirs = _their_explicit(npz)
    assert set(theirs) <= set(ours)
    for k, v in theirs.items():
        assert_close(ours[k], v)
    if "u" in npz.files:
        assert_close(model(npz["u"]), npz["y"])
        return
    x1, y1 = model(npz["x0"], npz["us"][0])
    assert_close(x1, npz["x1"])
    assert_close(y1, npz["y1"])
    xT, ys = model.simulate(npz["x0"], npz["us"])
    assert_close(xT, npz["xT"])
    assert_close(ys, npz["ys"])


def test_default_convention_differs_from_robustnn():
    """Negative control: the same parameters without the preset do not reproduce their vectors."""
    npz = np.load(DATA / "lbdn.npz")
    model = _model(npz)
    plain = rn.from_direct(model.config.replace(compat=None, eps=1e-12),
                           {k: v for k, v in model.direct().items() if k != "layers.2.d"})
    assert np.max(np.abs(plain(npz["u"]) - npz["y"])) > 1e-3


def test_bad_tree_is_refused():
    npz = np.load(DATA / "ren_lipschitz.npz")
    model = _model(npz)
    with pytest.raises(ValueError, match=r"lacks \['X3'\]"):
        direct_from_robustnn({"params": {"X": npz["param:X"]} | {k: npz["param:" + k] for k in
                             ("p", "Y1", "Y3", "Z3", "B2", "C2", "D12", "D21", "bx", "bv", "by")}},
                             model.config)
