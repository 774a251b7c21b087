"""Budgets: validation of the YAML and the verdict on measured figures."""

import pytest

from tests.helpers import DEFAULT_PART
from trigger.report import BudgetError, judge, load_budget

REPORT = {
    "latency": {"cycles": 8, "ns": 40.0, "ii": 1},
    "resources": {"LUT": 12000, "FF": 3000, "DSP": 0, "BRAM": 0, "percent": {"LUT": 0.69, "FF": 0.09,
                                                                              "DSP": 0.0, "BRAM": 0.0}},
    "bit_exact": True,
}


def test_budget_met_and_failed():
    ok = judge(REPORT, load_budget({"latency_ns": 50, "LUT": "1%", "FF": 5000, "ii": 1, "bit_exact": True}),
               DEFAULT_PART)
    assert ok == {"pass": True, "violations": [], "limits": ok["limits"]}
    bad = judge(REPORT, load_budget({"budget": {"latency_cycles": 4, "LUT": 10000, "FF": "0.05%"}}), DEFAULT_PART)
    assert not bad["pass"]
    assert bad["violations"] == [
        {"metric": "latency_cycles", "limit": 4, "value": 8},
        {"metric": "LUT", "limit": 10000, "value": 12000},
        {"metric": "FF", "limit": "0.05%", "value": "0.09%"},
    ]


def test_bit_exactness_required():
    verdict = judge({**REPORT, "bit_exact": False}, load_budget({"bit_exact": True}), DEFAULT_PART)
    assert verdict["violations"] == [{"metric": "bit_exact", "limit": True, "value": False}]


@pytest.mark.parametrize("budget, message", [
    ({"latency_us": 1}, "unknown budget key 'latency_us'"),
    ({"LUT": -5}, "impossible LUT"),
    ({"ii": 0}, "impossible ii"),
    ({"latency_cycles": 2.5}, "impossible latency_cycles"),
    ({"DSP": "150%"}, "percent must be in"),
    ({"FF": "lots"}, "count or a percent"),
    ({"bit_exact": "yes"}, "bit_exact must be true or false"),
    ({"latency_ns": None}, "must be a number"),
    ([1, 2], "a budget is a mapping"),
])
def test_bad_budgets_name_the_field(budget, message):
    with pytest.raises(BudgetError, match=message):
        load_budget(budget)


def test_budget_file_errors(tmp_path):
    with pytest.raises(BudgetError, match="not found"):
        load_budget(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("latency_ns: [1,\n")
    with pytest.raises(BudgetError, match="not valid YAML"):
        load_budget(bad)
    good = tmp_path / "good.yml"
    good.write_text("budget:\n  latency_ns: 100\n  LUT: 5%\n")
    assert load_budget(good) == {"latency_ns": 100, "LUT": {"percent": 5.0}}
