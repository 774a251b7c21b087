"""The toy constituent generator of the built-in DeepSets example (models/deepsets_jet_tagger).

The example's ops (item_dense, global_pool, softmax) are checked against hls4ml's C simulation in
test_softmax_sets.py; the example itself is built, verified and reported by `trigger demo`.
"""

from __future__ import annotations

import numpy as np


def test_constituent_generator_is_seeded_and_separates_classes():
    from trigger.data.constituents import CLASSES, N_CONSTITUENTS, generate

    x, y = generate(3000, seed=4)
    again, _ = generate(3000, seed=4)
    assert x.shape == (3000, N_CONSTITUENTS, 3) and np.array_equal(x, again)
    assert sorted(np.unique(y).tolist()) == list(range(len(CLASSES)))
    assert np.all(np.diff(x[:, :, 0], axis=1) <= 0)  # hardest constituent first
    assert np.allclose(x[:, :, 0].sum(axis=1), 8.0, atol=1e-4)  # pT fractions x 8
    spread = [np.abs(x[y == c][:, :, 1:]).mean() for c in range(3)]
    assert spread[2] > spread[1]  # three prongs spread wider than two
