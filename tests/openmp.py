"""One OpenMP thread for scikit-learn's tree training, in the tests that train ensembles (test_trees,
test_emulator_library).

HistGradientBoosting trains on OpenMP threads, one per core, whose idle threads spin while they wait: with
a pytest-xdist worker per core already (and other jobs), the muon_pt_bdt build took 23 CPU-s for 4.3 CPU-s
of work on one thread (2 cores, load ~12). The trees are the same on any number of threads.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def one_openmp_thread():
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime: threadpoolctl limits loaded ones)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield
