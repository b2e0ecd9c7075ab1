"""Strict YAML training config with DeePMD names."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from wander.train.config import Config, ConfigError, load_config, parse_config, save_config

BASE = {
    "model": {
        "type_map": ["C"],
        "descriptor": {"type": "se_e2_a", "rcut": 5.0, "rcut_smth": 0.5, "sel": [60],
                       "neuron": [10, 20], "axis_neuron": 4},
        "fitting_net": {"neuron": [30, 30], "resnet_dt": True},
    },
    "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-6, "decay_steps": 100},
    "loss": {"start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
    "training": {"training_data": {"systems": ["train.extxyz"]}, "numb_steps": 10, "batch_size": 2,
                 "disp_freq": 5, "save_freq": 5, "seed": 4},
}


def _with(path: str, value) -> dict:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return data


def test_valid_config_and_defaults() -> None:
    cfg = parse_config(BASE)
    assert isinstance(cfg, Config)
    assert cfg.model.descriptor.sel == (60,)
    assert cfg.model.descriptor.type_one_side is False and cfg.model.descriptor.precision == "float64"
    assert cfg.loss.start_pref_v == 0.0 and cfg.loss.limit_pref_e == 1.0
    assert cfg.training.validation_data is None
    assert parse_config(cfg.to_dict()) == cfg  # round trip through plain dicts


@pytest.mark.parametrize("path, typo, suggestion", [
    ("model.descriptor", "neurons", "neuron"),
    ("model.fitting_net", "resnetdt", "resnet_dt"),
    ("training", "numb_step", "numb_steps"),
    ("loss", "start_pref_ee", "start_pref_e"),
    ("", "learning_rat", "learning_rate"),
])
def test_unknown_keys_rejected_with_did_you_mean(path, typo, suggestion) -> None:
    data = copy.deepcopy(BASE)
    node = data
    for p in filter(None, path.split(".")):
        node = node[p]
    node[typo] = 1
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    full = f"{path}.{typo}" if path else typo
    assert f"unknown key '{full}'" in str(err.value)
    assert f"did you mean '{suggestion}'" in str(err.value)


def test_unknown_key_without_close_match_lists_known_keys() -> None:
    with pytest.raises(ConfigError, match="known keys: .*'neuron'"):
        parse_config(_with("model.descriptor.zzzzzz", 1))


@pytest.mark.parametrize("path, value, message", [
    ("model.descriptor.rcut_smth", 6.0, "rcut_smth"),
    ("model.descriptor.sel", [60, 10], "one entry per type"),
    ("model.descriptor.axis_neuron", 50, "axis_neuron"),
    ("model.descriptor.type", "se_e3", "se_e2_a"),
    ("model.descriptor.neuron", "wide", "expected an integer"),
    ("model.descriptor.resnet_dt", 1, "true/false"),
    ("model.fitting_net.activation_function", "swish", "unknown 'swish'"),
    ("learning_rate.stop_lr", 1.0, "stop_lr"),
    ("training.numb_steps", 0, "numb_steps"),
    ("training.batch_size", 1.5, "expected an integer"),
    ("model.type_map", ["C", "C"], "duplicates"),
    ("loss.hamiltonian.magnitude_scale", -0.1, "magnitude_scale"),
    ("loss.hamiltonian.start_pref_inter", -1.0, "start_pref_inter"),
])
def test_bad_values_rejected_with_key_path(path, value, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(_with(path, value))
    assert path in str(err.value)


def test_missing_required_key() -> None:
    data = copy.deepcopy(BASE)
    del data["model"]["descriptor"]["sel"]
    with pytest.raises(ConfigError, match="missing required key 'model.descriptor.sel'"):
        parse_config(data)


def test_yaml_paths_resolved_relative_to_file_and_saved(tmp_path: Path) -> None:
    sub = tmp_path / "runs"
    sub.mkdir()
    (sub / "input.yaml").write_text(yaml.safe_dump(BASE))
    cfg = load_config(sub / "input.yaml")
    assert cfg.training.training_data.systems == (str((sub / "train.extxyz").resolve()),)
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_shipped_example_configs_are_valid():
    """Every training recipe in docs/examples parses with the strict validator, and the frozen
    heads recipe builds on the force field of the two-step recipe."""
    from pathlib import Path

    from wander.train.config import load_config

    examples = sorted((Path(__file__).parents[1] / "docs" / "examples").glob("*.yaml"))
    assert {p.name for p in examples} >= {"blg.yaml", "blg_ff.yaml", "blg_heads.yaml"}
    cfgs = {p.name: load_config(p) for p in examples}
    heads, ff = cfgs["blg_heads.yaml"].to_dict(), cfgs["blg_ff.yaml"].to_dict()
    assert heads["model"]["hamiltonian"]["descriptor_mode"] == "frozen"
    assert heads["training"]["init_model"].endswith("runs/blg_ff/model.pt")
    for key in ("descriptor", "fitting_net", "type_map"):
        assert heads["model"][key] == ff["model"][key] == cfgs["blg.yaml"].to_dict()["model"][key], key
    # the shipped model's fine-tunes: same network as blg.yaml (init_model needs it), the second one
    # with the 10 A term of the refit it starts from
    base = cfgs["blg.yaml"].to_dict()["model"]
    ft1, ft2 = cfgs["blg_finetune.yaml"].to_dict(), cfgs["blg_finetune2.yaml"].to_dict()
    for key in ("descriptor", "fitting_net", "type_map", "hamiltonian"):
        assert ft1["model"][key] == ft2["model"][key] == base[key], key
    assert ft1["training"]["init_model"].endswith("runs/blg_long/model.pt")
    assert ft2["training"]["init_model"].endswith("runs/blg_ft/refit10.pt")
    assert (ft2["model"]["interlayer"]["r_on"], ft2["model"]["interlayer"]["r_off"]) == (9.0, 10.0)
    ft3 = cfgs["blg_finetune3.yaml"].to_dict()
    assert ft3["model"] == ft2["model"] and ft3["training"]["init_model"].endswith("runs/blg_ft2/refit.pt")
    assert ft3["training"]["training_data"]["weights"] == {"blgal_*": 0.1, "blgel_*": 3}
    assert ft1["model"]["interlayer"]["r_off"] is None          # the descriptor's 6 A, as in step 1
    # steps 8-10 (9 A heads): frozen on step 7's force field, then magnitude-weighted, then joint;
    # the same force field settings all along, each step starting from the one before
    h9, h9m, j9 = (cfgs[f"{n}.yaml"].to_dict() for n in ("blg_heads9", "blg_heads9_mag", "blg_joint9"))
    for key in ("descriptor", "fitting_net", "type_map", "interlayer"):
        assert h9["model"][key] == h9m["model"][key] == j9["model"][key] == ft3["model"][key], key
    assert h9["model"]["hamiltonian"]["r_cut"] == 9.0 and ft3["model"]["hamiltonian"]["r_cut"] == 7.0
    assert [c["model"]["hamiltonian"]["descriptor_mode"] for c in (h9, h9m, j9)] == ["frozen", "frozen", "joint"]
    assert h9["training"]["init_model"].endswith("runs/blg_ft3/refit.pt")
    assert h9m["training"]["init_model"].endswith("runs/blg_heads9/model.pt")
    assert j9["training"]["init_model"].endswith("runs/blg_heads9_mag/model.pt")
    assert h9["loss"]["hamiltonian"]["magnitude_scale"] is None
    assert h9m["loss"]["hamiltonian"]["magnitude_scale"] == j9["loss"]["hamiltonian"]["magnitude_scale"] == 0.1
