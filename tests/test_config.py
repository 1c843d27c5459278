"""The CLI's config validator: every bad config is one ArchlearnError naming the problem."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archlearn import ArchlearnError
from archlearn.config import RunConfig, validate_run_config

FIELDS = set(RunConfig.model_fields)
GOOD = {"job": "lenet-mnist", "seeds": 1, "epochs": 2, "options": {"lambda1": 0.004}}
junk = st.one_of(st.text(max_size=5), st.floats(allow_nan=True),
                 st.lists(st.integers(), max_size=2), st.none(),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
unknown_key = st.text(min_size=1, max_size=8).filter(lambda k: k not in FIELDS)
lambdas = st.sampled_from(["lambda1", "lambda2", "lambda3", "lambda4", "lr"])


@st.composite
def bad_configs(draw):
    config = dict(GOOD)
    kind = draw(st.sampled_from(["unknown", "type", "range", "option", "option_key", "job",
                                 "budget"]))
    if kind == "unknown":
        config[draw(unknown_key)] = draw(junk)
    elif kind == "type":
        field = draw(st.sampled_from(["seeds", "epochs", "out", "options", "data"]))
        value = draw(junk)
        if field in ("out",) and isinstance(value, str):
            value = [value]
        if field == "options" and isinstance(value, dict):
            value = [value]
        config[field] = value
    elif kind == "range":
        config[draw(st.sampled_from(["seeds", "epochs"]))] = draw(st.integers(max_value=0))
    elif kind == "option":
        config["options"] = {draw(lambdas): draw(st.floats(max_value=-1e-9) | st.text(max_size=3))}
    elif kind == "option_key":
        config["options"] = {draw(unknown_key.filter(lambda k: k not in (
            "lambda1", "lambda2", "lambda3", "lambda4", "k", "lr", "width", "depth", "init_width",
            "init_depth", "warmup", "freeze"))): 1}
    elif kind == "budget":
        config["budget"] = draw(st.sampled_from([{"flops": 0.5}, {"macs": -1.0}, {"macs": 1.0},
                                                 {"latency": 2.0}, {"macs": 0.5, "params": 0.5},
                                                 {"macs": "x"}]))
    else:
        config["job"] = draw(st.text(max_size=10).filter(lambda j: j != "lenet-mnist"))
    return config


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_configs())
def test_bad_configs_raise_one_clear_error(config):
    with pytest.raises(ArchlearnError) as info:
        validate_run_config(config)
    assert str(info.value)  # a message, never empty


def test_good_config_passes():
    assert validate_run_config(GOOD).options == {"lambda1": 0.004}
    assert validate_run_config({**GOOD, "budget": {"params": 40000.0}}).budget == {
        "params": 40000.0}


def test_cli_rejects_bad_config_file_in_one_line(tmp_path, archlearn_main):
    # through the CLI's entry point in this process (tests/test_cli.py runs the installed script)
    path = tmp_path / "run.json"
    out = tmp_path / "out"
    path.write_text(json.dumps({**GOOD, "out": str(out), "options": {"lambda3": -1}}))
    code, _, err = archlearn_main("run", "lenet-mnist", "--config", str(path))
    assert code == 2
    assert err.strip().count("\n") == 0 and "lambda3" in err
    assert not out.exists()
