"""Every case of the public reference-parity set, through tests/parity_adapter.py (one test per case)."""

from __future__ import annotations

import pytest
from conftest import PARITY_DIR, needs_parity, parity_manifest

CASES = [c["id"] for c in (parity_manifest() or {"cases": []})["cases"]]


@needs_parity
@pytest.mark.parametrize("case_id", CASES)
def test_case_matches_reference(case_id, checker):
    from parity_adapter import run_case

    case = next(c for c in parity_manifest()["cases"] if c["id"] == case_id)
    inputs = checker.load_tensors(PARITY_DIR, case.get("inputs_tensors", {}))
    outputs = run_case(case, inputs, PARITY_DIR)
    expected = checker.load_tensors(PARITY_DIR, case["expected"])
    assert set(expected) <= set(outputs), f"not returned: {sorted(set(expected) - set(outputs))}"
    atol = float(case["tolerance"]["atol"])
    failures = []
    for name, exp in expected.items():
        good, message = checker.compare(name, outputs[name], exp, atol)
        if not good:
            failures.append(message)
    assert not failures, "; ".join(failures)


@needs_parity
def test_unknown_kind_is_not_implemented():
    from parity_adapter import run_case

    with pytest.raises(NotImplementedError):
        run_case({"kind": "something_new"}, {}, PARITY_DIR)
