"""Two worker processes sharing one Optuna study through SQLite (the Bayesian-optimisation
baseline's storage); any SQLAlchemy URL works the same way."""

import subprocess
import sys

import optuna

WORKER = """
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="widths", storage=sys.argv[1])
study.optimize(lambda t: (t.suggest_int("fc", 5, 500, log=True) - 40) ** 2, n_trials=6)
"""


def test_two_workers_share_one_study(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    optuna.create_study(study_name="widths", storage=url)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), url]) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    study = optuna.load_study(study_name="widths", storage=url)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 12
    assert len({t.number for t in trials}) == 12
