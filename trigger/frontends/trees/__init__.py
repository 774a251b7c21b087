"""Tree ensembles (boosted decision trees, random forests) to one ``tree_ensemble`` op.

Stages, each importing only the ones before it: ``ensemble`` (the library-neutral
float ensemble, its JSON storage and its exact quantization into a firmware
model), ``readers`` (scikit-learn objects, xgboost JSON, ONNX; pickles refused),
``build`` (the ``kind: bdt`` frontend, with training on the toy muon simulation).

Python API: ``save_ensemble(fitted_sklearn_model, "ensemble.json")`` stores an
ensemble as data, which a ``kind: bdt`` trigger.yml then points at (``model.file``).
"""

from __future__ import annotations

from pathlib import Path

from trigger.frontends.trees.ensemble import FloatEnsemble, firmware_model
from trigger.frontends.trees.readers import from_sklearn, read_file


def save_ensemble(model, path) -> Path:
    """Writes a fitted scikit-learn ensemble as trigger's ensemble JSON (data, never a pickle)."""
    return from_sklearn(model).save(Path(path))


__all__ = ["FloatEnsemble", "firmware_model", "from_sklearn", "read_file", "save_ensemble"]
