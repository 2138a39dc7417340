"""Train an R2DN with DistributedDataParallel: gloo on CPU processes, nccl on GPUs, same code.

Each process (rank) draws its own sequences of a fixed nonlinear system, runs the wrapped model
on the whole sequence, ``ddp(x0, us)`` (the call DDP synchronises; a method of ``ddp.module`` such
as ``simulate`` would bypass it), and takes an Adam step. DDP averages the gradients, so every
rank holds the same model; rank 0 prints the loss and certifies the result.

Launch with ``torchrun`` (it sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)::

    torchrun --nproc-per-node 2 examples/torch_ddp.py                # 2 CPU processes, gloo
    torchrun --nproc-per-node 4 examples/torch_ddp.py --device cuda  # 4 GPUs, nccl
    # two machines, 8 GPUs each: run on each machine, with its --node-rank (0 and 1)
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 \\
        --rdzv-backend c10d --rdzv-endpoint HOST0:29500 examples/torch_ddp.py --device cuda

Without torchrun it runs as a single process (world size 1).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import r2dn
import r2dn.torch as rn


def batch(gen: torch.Generator, steps: int, size: int, device: torch.device):
    """Inputs ``us (steps, size, 1)`` and outputs of ``y_t = tanh(y_{t-1} + u_t) / 2`` (a fixed,
    contracting target system), drawn from this rank's generator."""
    us = torch.randn(steps, size, 1, generator=gen)
    y, ys = torch.zeros(size, 1), []
    for u in us:
        y = torch.tanh(y + u) / 2
        ys.append(y)
    return us.to(device), torch.stack(ys).to(device)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="'cpu' (gloo) or 'cuda' (nccl)")
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps")
    parser.add_argument("--horizon", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="sequences per rank")
    parser.add_argument("--chunk", type=int, default=None, help="checkpoint the rollout in chunks")
    args = parser.parse_args(argv)

    cuda = args.device.startswith("cuda")
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)

    model = rn.ContractingR2DN(1, 8, 16, 1, hidden=(32,), seed=0, device=device)  # same on all ranks
    wrapped = DDP(model) if distributed else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1000 + rank)                  # different data per rank
    for step in range(args.steps):
        us, ys_true = batch(gen, args.horizon, args.batch, device)
        _, ys = wrapped(model.init_state(args.batch), us, chunk=args.chunk)
        loss = ((ys - ys_true) ** 2).mean()
        opt.zero_grad()
        loss.backward()                                              # gradients averaged here
        opt.step()
        if rank == 0 and (step % 50 == 0 or step == args.steps - 1):
            print(f"step {step:4d}  loss {loss.item():.4e}")
    if rank == 0:
        print(r2dn.certify(model))
    if distributed:
        dist.destroy_process_group()
    return loss.item()


if __name__ == "__main__":
    main()
