"""The budgets benchmark's resumable files: a row made by older code is made again, not kept."""

from archlearn.provenance import merged, source_record
from benchmarks.budgets import Rows, key, run_current


def _row(seed, run=None, model="lenet5"):
    return {"model": model, "method": "tsrelu", "budget": 0.5, "seed": seed,
            **({"run": run} if run else {})}


def test_only_rows_of_todays_code_count_as_done_and_parts_follow_their_rows():
    today = {"command": "today", "git": {"commit": "c", "dirty": False},
             "sources": {**source_record(), "run": "r1"}}
    unrecorded = {"command": "unrecorded", "git": {"commit": "a"}}
    edited = {"command": "edited", "git": {"commit": "b", "dirty": False},
              "sources": {"scope": "loaded", "run": "r0",
                          "files": {"benchmarks/budgets.py": "0" * 16}}}
    assert run_current(today) and not run_current(edited) and not run_current(unrecorded)
    done = {"provenance": merged(unrecorded, edited, today),
            "rows": [_row(0), _row(1, "r0"), _row(2, "r1"), _row(0, model="resnet")]}
    table = Rows(done, key)
    # the width-8 residual CNN's row is of another model: dropped; the stale two stay till redone
    assert [r["seed"] for r in table.rows] == [0, 1, 2]
    assert table.current == {key(_row(2))}
    this = {"command": "this", "sources": {"run": table.run}}
    assert table.commands(this) == ["unrecorded", "edited", "today", "this"]
    table.add(_row(0))
    assert table.commands(this) == ["edited", "today", "this"]
    table.add(_row(1))
    assert [r["seed"] for r in table.rows] == [2, 0, 1]
    assert [p["command"] for p in table.provenance(this)["parts"]] == ["today", "this"]
    assert {r["run"] for r in table.rows} == {"r1", table.run}
