"""Writes tests/data/trees/: a small xgboost multi-class model saved as JSON, with probe inputs and
xgboost's own margins on them, so the tests check the xgboost JSON reader without xgboost installed.

Needs xgboost-cpu (scripts/setup_conifer.sh installs it); run: .venv/bin/python scripts/make_xgboost_test_model.py
"""

from pathlib import Path

import numpy as np
import xgboost as xgb

from trigger.data.jets import generate

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "trees"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    x, y = generate(6000, seed=3)
    x = x[:, :6]  # six features keep the file small
    grid = np.round(x * 8) / 8  # inputs on the ap_fixed<8,4> grid the tests use
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3, learning_rate=0.3, random_state=0, n_jobs=1,
                              tree_method="exact")
    model.fit(grid, y)
    model.get_booster().save_model(str(OUT / "xgb_jets_5class.json"))
    probe = np.round(np.random.default_rng(7).normal(0, 1.5, (500, 6)) * 8) / 8
    margins = model.get_booster().predict(xgb.DMatrix(probe), output_margin=True)
    np.save(OUT / "xgb_jets_5class_probe.npy", probe.astype(np.float64), allow_pickle=False)
    np.save(OUT / "xgb_jets_5class_margins.npy", np.asarray(margins, dtype=np.float64), allow_pickle=False)
    print(f"wrote {OUT}: xgboost {xgb.__version__}, margins {margins.shape}")


if __name__ == "__main__":
    main()
