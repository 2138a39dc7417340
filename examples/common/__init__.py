"""What the paper's examples and the benchmarks share, one module per concern.

* :mod:`.cli`: the command line (shared options, run settings, progress bars, epoch logs);
* :mod:`.adapters`: the framework adapters (one training step per framework, simulation);
* :mod:`.schedules`: learning-rate schedules;
* :mod:`.results`: the paper's settings against this run's, ``results.json``, NRMSE;
* :mod:`.plots`: matplotlib figures written without a display;
* :mod:`.timing`: stopwatches, timing loops, log-log slopes, the CPU load;
* :mod:`.threads`: one BLAS thread (call before NumPy is imported);
* :mod:`.datasets`: MNIST's idx files and the reaction-diffusion PDE of the observer examples.

Installed with r2dn as ``r2dn_examples`` (so the scripts in ``examples/`` and ``benchmarks/`` import
it from anywhere, without editing ``sys.path``); importing it sets nothing and imports no
framework.
"""
