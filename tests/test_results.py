"""The results contract (bench/results.py) holds for every committed run, and catches a run
that breaks it."""

import copy
import json

import pytest
from support import ROOT

from bench.results import load, problems

COMMITTED = sorted((ROOT / "docs" / "runs").glob("*/results.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.parent.name)
def test_every_committed_run_keeps_the_contract(path):
    assert problems(json.loads(path.read_text())) == []


def test_a_run_that_breaks_the_contract_is_named(tmp_path):
    results = json.loads((ROOT / "docs" / "runs" / "fair" / "results.json").read_text())
    broken = copy.deepcopy(results)
    del broken["runs"][0]["opening"]  # a field the contract requires of a wrk run
    broken["runs"][1]["rps"] = "fast"  # the wrong type
    broken["runs"][2]["stale_field"] = 1  # a field nobody documented
    assert sorted(problems(broken)) == ["run 0: no opening",
                                        "run 1: rps = 'fast' is not float?",
                                        "run 2: stale_field is not in the contract"]
    (tmp_path / "results.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="no opening"):
        load(tmp_path)


def test_a_figure_that_could_not_be_measured_is_none_not_a_wrong_type():
    results = json.loads((ROOT / "docs" / "runs" / "fair" / "results.json").read_text())
    results["runs"][0]["peak_threads"] = None  # allowed: "int?"
    results["runs"][0]["valid"] = None  # not allowed: "bool"
    assert problems(results) == ["run 0: valid = None is not bool"]


def test_a_results_json_of_another_version_does_not_load(tmp_path):
    """Version 2 added the percentiles' sample counts and intervals: a version-1 file would
    be read as if its intervals were not recorded when its fields are simply missing."""
    results = json.loads((ROOT / "docs" / "runs" / "fair" / "results.json").read_text())
    assert problems({**results, "version": 1}) == ["results: version 1, not 2"]
    old = {key: value for key, value in results.items() if key != "version"}
    old["runs"] = [{k: v for k, v in run.items() if k != "latency_samples"}
                   for run in old["runs"]]
    assert problems(old)[:2] == ["results: no version", "run 0: no latency_samples"]
    (tmp_path / "results.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="no version"):
        load(tmp_path)
