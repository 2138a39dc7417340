"""DDP and FSDP2 with two real gloo processes on the CPU (started by the test, localhost).

Each rank takes its own slice of the data and calls the wrapped model on the whole sequence,
``wrapped(x0, us)``. The gradients must be equal on both ranks and equal to the average of the
gradients that one process computes on the two slices, for an R2DN and a REN, under DDP and
under FSDP2's ``fully_shard``.
"""

from __future__ import annotations

import os
import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402

import r2dn.torch as rt  # noqa: E402

WORLD = 2


def _models():
    return {"r2dn": rt.ContractingR2DN(2, 3, 4, 2, hidden=(5,), seed=0, dtype="float64"),
            "ren": rt.ContractingREN(2, 3, 4, 2, seed=0, dtype="float64")}


def _slice(rank: int):
    gen = torch.Generator().manual_seed(100 + rank)
    return (torch.randn(3, 3, generator=gen, dtype=torch.float64),
            torch.randn(7, 3, 2, generator=gen, dtype=torch.float64))


def _loss(call, x0, us):
    xT, ys = call(x0, us)
    return (ys.sin() ** 2).mean() + (xT ** 2).mean()


def _worker(rank: int, port: int, out_dir: str) -> None:
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    x0, us = _slice(rank)
    grads = {}
    for name, model in _models().items():
        ddp = DDP(model)
        _loss(ddp, x0, us).backward()
        grads[f"ddp.{name}"] = {k: p.grad.clone() for k, p in model.named_parameters()}
    for name, model in _models().items():
        fully_shard(model)
        try:
            model.explicit()
        except RuntimeError as err:                  # sharded parameters: a clear error
            grads[f"fsdp.{name}.explicit_error"] = str(err)
        _loss(model, x0, us).backward()
        grads[f"fsdp.{name}"] = {k: p.grad.full_tensor() for k, p in model.named_parameters()}
    torch.save(grads, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rank_grads(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # fork: the children inherit the imported modules (spawn would import torch twice more)
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True,
                       start_method="fork")
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def _single_process_average(name: str):
    per_rank = []
    for rank in range(WORLD):
        model = _models()[name]
        _loss(model, *_slice(rank)).backward()
        per_rank.append({k: p.grad for k, p in model.named_parameters()})
    return {k: sum(g[k] for g in per_rank) / WORLD for k in per_rank[0]}


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp"])
@pytest.mark.parametrize("name", ["r2dn", "ren"])
def test_gradients_are_synchronised_and_averaged(rank_grads, wrapper, name):
    ref = _single_process_average(name)
    g0, g1 = (g[f"{wrapper}.{name}"] for g in rank_grads)
    assert set(g0) == set(ref)
    for k in ref:
        torch.testing.assert_close(g0[k], g1[k], rtol=0, atol=1e-15)
        torch.testing.assert_close(g0[k], ref[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["r2dn", "ren"])
def test_sharded_explicit_names_the_fix(rank_grads, name):
    assert "call the module itself" in rank_grads[0][f"fsdp.{name}.explicit_error"]
