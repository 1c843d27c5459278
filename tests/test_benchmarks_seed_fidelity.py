"""The paper 2 and paper 4 benchmarks run end to end at a tiny size, and their report renders."""

import json

from benchmarks import diffsparse, report_seeds, switcher


def test_switcher_benchmark_and_its_report(tmp_path):
    out = tmp_path / "switcher.json"
    switcher.main(["--seeds", "1", "--epochs", "1", "--tasks", "lenet300",
                   "--rows", "switcher neurons, simplified", "--out", str(out)])
    task = json.loads(out.read_text())["tasks"]["lenet300"]
    run = task["runs"][0]
    assert set(run) == {"dense", "switcher neurons, simplified",
                        "magnitude @ switcher neurons, simplified"}
    learned, magnitude = run["switcher neurons, simplified"], run[
        "magnitude @ switcher neurons, simplified"]
    assert learned["max_output_difference"] < 1e-4
    assert magnitude["nonzero_weights"] == learned["nonzero_weights"]  # equal sparsity
    assert "vs_magnitude_pp" in task["summary"]["switcher neurons, simplified"]
    text = report_seeds.switcher_section(tmp_path)
    assert "LeNet-300-100" in text and "magnitude pruning at equal sparsity" in text


def test_diffsparse_benchmark_and_its_report(tmp_path):
    out = tmp_path / "diffsparse.json"
    diffsparse.main(["--seeds", "1", "--epochs", "2", "--lams", "5", "--cell-lams", "1",
                     "--nodes", "3", "--out", str(out)])
    experiments = json.loads(out.read_text())["experiments"]
    for name in ("lenet300", "cell"):
        run = experiments[name]["runs"][0]
        assert run["magnitude"]["nonzero_weights"] == run["diffsparse"]["nonzero_weights"]
        assert run["diffsparse"]["max_output_difference"] < 1e-4
    cell = experiments["cell"]["runs"][0]
    assert cell["diffsparse"]["candidate_edges"] == 3 and "learned cell from scratch" in cell
    text = report_seeds.diffsparse_section(tmp_path)
    assert "Chosen: **lam" in text and "Learned cell" in text
