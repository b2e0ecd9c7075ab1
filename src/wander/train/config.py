"""Training configuration: YAML -> nested frozen dataclasses with strict validation.

Names follow DeePMD-kit (``model.type_map``, ``model.descriptor``, ``model.fitting_net``,
``learning_rate``, ``loss``, ``training``). Unknown keys are errors with a did-you-mean hint, values
are type- and range-checked, and data paths are resolved relative to the YAML file. New sections
(e.g. Hamiltonian loss terms per category) are new dataclass fields; the loader needs no change.
See docs/model.md for every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "ConfigError",
    "Config",
    "DescriptorConfig",
    "FittingConfig",
    "HamiltonianModelConfig",
    "InterlayerConfig",
    "HamiltonianLossConfig",
    "ModelConfig",
    "LearningRateConfig",
    "LossConfig",
    "DataConfig",
    "TrainingConfig",
    "load_config",
    "parse_config",
    "save_config",
]


class ConfigError(ValueError):
    """Invalid training configuration; the message names the offending key path."""


# ---------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class DescriptorConfig:
    """``model.descriptor`` (DeePMD ``se_e2_a``)."""

    sel: tuple[int, ...]
    type: str = "se_e2_a"
    rcut: float = 6.0
    rcut_smth: float = 0.5
    neuron: tuple[int, ...] = (25, 50, 100)
    axis_neuron: int = 16
    resnet_dt: bool = False
    type_one_side: bool = False
    activation_function: str = "tanh"
    precision: str = "float64"
    seed: int | None = None

    def __post_init__(self) -> None:
        _check(self.type == "se_e2_a", "type", f"only 'se_e2_a' is supported, got {self.type!r}")
        _check(self.rcut > 0, "rcut", "must be > 0")
        _check(0 <= self.rcut_smth < self.rcut, "rcut_smth", "must satisfy 0 <= rcut_smth < rcut")
        _check(len(self.sel) > 0 and all(s >= 0 for s in self.sel) and sum(self.sel) > 0,
               "sel", "must be non-negative integers with a positive sum")
        _check(len(self.neuron) > 0 and all(n > 0 for n in self.neuron), "neuron", "must be positive integers")
        _check(1 <= self.axis_neuron <= self.neuron[-1], "axis_neuron", "must lie in [1, neuron[-1]]")
        _check(self.precision in ("float64", "float32"), "precision", "must be 'float64' or 'float32'")
        _check_activation(self.activation_function)


@dataclass(frozen=True)
class FittingConfig:
    """``model.fitting_net``."""

    neuron: tuple[int, ...] = (240, 240, 240)
    resnet_dt: bool = True
    activation_function: str = "tanh"
    seed: int | None = None

    def __post_init__(self) -> None:
        _check(all(n > 0 for n in self.neuron), "neuron", "must be positive integers")
        _check_activation(self.activation_function)


@dataclass(frozen=True)
class HamiltonianModelConfig:
    """``model.hamiltonian``: tight-binding heads on the shared descriptor (``HeadsConfig`` names).

    ``orbitals`` maps every element to Wannier90 orbital names or shell letters (``C: pz``,
    ``Mo: d``, ``Si: [s, p]``). ``n_electrons`` (electrons per atom in the Wannier manifold, e.g.
    ``C: 1`` for pz) is stored in the checkpoint for band filling. ``energy_zero``: ``fermi`` trains
    on ``H - E_F`` (each frame's DFT Fermi level subtracted from the onsite energies; the absolute
    potential zero of a periodic DFT run depends on the whole cell, e.g. monolayer vs bilayer, and no
    local model can learn it), ``onsite_mean`` on ``H`` minus the frame's mean onsite energy (what a
    local model can learn when E_F itself depends on the frame's strain and stacking; the Fermi
    level of a prediction then comes from band filling), ``absolute`` on the raw Wannier Hamiltonian. ``descriptor_mode``: ``frozen``
    trains the heads on a fixed force field (``training.init_model``), ``joint`` back-propagates the
    Hamiltonian loss into the descriptor as well. ``pair_overlap`` adds the contractions of the
    two atoms' neighbour densities to the pair invariants (``HeadsConfig``).
    """

    orbitals: dict[str, tuple[str, ...]]
    r_cut: float = 7.0
    r_near: float = 3.3
    near_width: float = 0.5
    r_env: float = 4.0
    layered: bool = True
    descriptor_mode: str = "frozen"
    density_channels: int = 8
    tp_channels: int = 8
    n_rbf: int = 16
    feature_lmax: int | None = None
    pair_overlap: bool = False
    hidden: tuple[int, ...] = (64, 64)
    avg_neighbors: float = 10.0
    output_scale: float = 1.0
    n_electrons: dict[str, float] | None = None
    energy_zero: str = "fermi"
    seed: int | None = None

    def __post_init__(self) -> None:
        _check(self.energy_zero in ("fermi", "absolute", "onsite_mean"), "energy_zero",
               f"must be 'fermi', 'onsite_mean' or 'absolute', got {self.energy_zero!r}")
        _check(len(self.orbitals) > 0, "orbitals", "must list the orbitals of every element")
        _check(self.descriptor_mode in ("frozen", "joint"), "descriptor_mode",
               f"must be 'frozen' or 'joint', got {self.descriptor_mode!r}")
        _check(0 < self.r_near <= self.r_cut, "r_near", "must satisfy 0 < r_near <= r_cut")
        _check(self.near_width >= 0 and self.r_near - self.near_width / 2 > 0
               and self.r_near + self.near_width / 2 <= self.r_cut, "near_width",
               "the blend [r_near - near_width/2, r_near + near_width/2] must lie inside (0, r_cut]")
        _check(self.r_env > 0, "r_env", "must be > 0")
        for name in ("density_channels", "tp_channels", "n_rbf"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        _check(all(h >= 1 for h in self.hidden), "hidden", "must be positive integers")
        _check(self.feature_lmax is None or 0 <= self.feature_lmax <= 8, "feature_lmax",
               "must be between 0 and 8 (default: twice the highest orbital l)")
        _check(self.avg_neighbors > 0, "avg_neighbors", "must be > 0")
        _check(self.output_scale > 0, "output_scale", "must be > 0")
        if self.n_electrons is not None:
            _check(all(v >= 0 for v in self.n_electrons.values()), "n_electrons", "must be >= 0")

    def orbital_spec(self) -> dict[str, Any]:
        """``{element: spec}`` for ``OrbitalBasis`` (a single name as a string)."""
        return {el: (v[0] if len(v) == 1 else list(v)) for el, v in self.orbitals.items()}


@dataclass(frozen=True)
class InterlayerConfig:
    """``model.interlayer``: the registry-dependent interlayer term (:mod:`wander.nn.interlayer`).

    ``fit_configs``: glob on the training frames' ``info["config"]`` names selecting the frames the
    term is fitted to before training (the DFT registry scan, ``blgscan_*``). ``fit_offsets``:
    ``one`` energy offset for all of them (the term carries the binding curve as well as the registry
    dependence) or one ``per_distance`` (the fit sees only the registry dependence and the network
    learns the binding curve). ``force_weight``: weight of the in-plane forces in that fit (0:
    energies only). ``r_on``: start of the taper that ends at ``r_off`` (default ``descriptor.rcut``;
    a larger value lets a short-ranged network leave all interlayer energy to this term).
    ``hide_from_network``: the descriptor's rows of interlayer pairs are switched off smoothly
    (the term's interlayer indicator), so the network describes each sheet and the term all of
    the interlayer energy.
    ``params``: starting values (default: Kolmogorov-Crespi graphite).
    """

    type: str = "kolmogorov_crespi"
    fit_configs: str | None = "blgscan_*"
    fit_offsets: str = "one"
    force_weight: float = 0.0
    fit_steps: int = 1500
    r_on: float = 5.0
    r_off: float | None = None
    hide_from_network: bool = False
    normal_on: float = 1.7
    normal_off: float = 2.1
    h_on: float = 1.0
    h_off: float = 2.0
    params: dict[str, float] | None = None

    def __post_init__(self) -> None:
        _check(self.type == "kolmogorov_crespi", "type", f"only 'kolmogorov_crespi' is supported, got {self.type!r}")
        _check(self.fit_offsets in ("one", "per_distance"), "fit_offsets",
               f"must be 'one' or 'per_distance', got {self.fit_offsets!r}")
        _check(self.force_weight >= 0, "force_weight", "must be >= 0")
        _check(self.fit_steps >= 1, "fit_steps", "must be >= 1")
        _check(0 < self.normal_on < self.normal_off, "normal_on", "must satisfy 0 < normal_on < normal_off")
        _check(0 <= self.h_on < self.h_off, "h_on", "must satisfy 0 <= h_on < h_off")
        if self.params is not None:
            from wander.nn.interlayer import KC_GRAPHITE

            unknown = sorted(set(self.params) - set(KC_GRAPHITE))
            _check(not unknown, "params", f"unknown parameters {unknown}; known: {sorted(KC_GRAPHITE)}")


@dataclass(frozen=True)
class ModelConfig:
    """``model``."""

    type_map: tuple[str, ...]
    descriptor: DescriptorConfig
    fitting_net: FittingConfig = field(default_factory=FittingConfig)
    hamiltonian: HamiltonianModelConfig | None = None
    interlayer: InterlayerConfig | None = None
    data_stat_nbatch: int = 10

    def __post_init__(self) -> None:
        _check(len(self.type_map) > 0, "type_map", "must not be empty")
        _check(len(set(self.type_map)) == len(self.type_map), "type_map", "has duplicates")
        _check(len(self.descriptor.sel) == len(self.type_map), "descriptor.sel",
               f"needs one entry per type in type_map ({len(self.type_map)})")
        _check(self.data_stat_nbatch >= 1, "data_stat_nbatch", "must be >= 1")
        if self.interlayer is not None:
            r_off = self.interlayer.r_off or self.descriptor.rcut
            _check(0 < self.interlayer.r_on < r_off, "interlayer.r_on",
                   f"must lie in (0, r_off = {r_off}): the taper ends at interlayer.r_off "
                   "(default descriptor.rcut)")
        h = self.hamiltonian
        if h is not None:
            cut = self.neighbor_cutoff
            missing = [el for el in self.type_map if el not in h.orbitals]
            _check(not missing, "hamiltonian.orbitals", f"no orbitals for {missing} of type_map")
            extra = sorted(set(h.orbitals) - set(self.type_map))
            _check(not extra, "hamiltonian.orbitals", f"elements {extra} are not in type_map")
            _check(h.r_env <= cut, "hamiltonian.r_env",
                   f"must be <= the force field's neighbour-list cutoff ({cut}): the heads' densities "
                   "use that list")
            if h.n_electrons is not None:
                missing = [el for el in self.type_map if el not in h.n_electrons]
                _check(not missing, "hamiltonian.n_electrons", f"no electron count for {missing}")


    @property
    def neighbor_cutoff(self) -> float:
        """Cutoff of the neighbour list the force field needs: ``descriptor.rcut`` or the interlayer
        term's ``r_off``, whichever is larger (Angstrom)."""
        if self.interlayer is None or self.interlayer.r_off is None:
            return self.descriptor.rcut
        return max(self.descriptor.rcut, self.interlayer.r_off)


@dataclass(frozen=True)
class LearningRateConfig:
    """``learning_rate``: ``lr(step) = max(start_lr * r^(step // decay_steps), stop_lr)`` (DeePMD ``exp``)."""

    type: str = "exp"
    start_lr: float = 1e-3
    stop_lr: float = 1e-8
    decay_steps: int = 5000

    def __post_init__(self) -> None:
        _check(self.type == "exp", "type", f"only 'exp' is supported, got {self.type!r}")
        _check(self.start_lr > 0, "start_lr", "must be > 0")
        _check(0 < self.stop_lr <= self.start_lr, "stop_lr", "must satisfy 0 < stop_lr <= start_lr")
        _check(self.decay_steps > 0, "decay_steps", "must be > 0")


@dataclass(frozen=True)
class LossConfig:
    """``loss``: prefactors ``p = limit + (start - limit) * lr / start_lr`` per term (DeePMD ``ener``).

    ``relative_f`` (eV/A, DeePMD's key): if set, each atom's force error enters the loss divided by
    ``|F_label| + relative_f``, so frames with very large forces (e.g. strongly distorted
    active-learning frames) do not dominate the gradient; the reported force RMSE stays absolute.
    """

    type: str = "ener"
    start_pref_e: float = 0.02
    limit_pref_e: float = 1.0
    start_pref_f: float = 1000.0
    limit_pref_f: float = 1.0
    start_pref_v: float = 0.0
    limit_pref_v: float = 0.0
    relative_f: float | None = None
    hamiltonian: HamiltonianLossConfig | None = None

    def __post_init__(self) -> None:
        _check(self.type == "ener", "type", f"only 'ener' is supported, got {self.type!r}")
        _check(self.relative_f is None or self.relative_f > 0, "relative_f", "must be > 0 (eV/A) or absent")
        for f in dataclasses.fields(self):
            if f.name.startswith(("start_pref", "limit_pref")):
                _check(getattr(self, f.name) >= 0, f.name, "must be >= 0")


@dataclass(frozen=True)
class HamiltonianLossConfig:
    """``loss.hamiltonian``: one prefactor pair per Hamiltonian category, interpolated like the
    energy / force prefactors; the term is ``sum_c p_c MSE_c`` (eV^2, per matrix element).
    ``magnitude_scale`` h0 (eV): each element's squared error weighs ``1 + |H_ref| / h0`` in ``MSE_c``."""

    start_pref_onsite: float = 1.0
    limit_pref_onsite: float = 1.0
    start_pref_intra_near: float = 1.0
    limit_pref_intra_near: float = 1.0
    start_pref_intra_long: float = 1.0
    limit_pref_intra_long: float = 1.0
    start_pref_inter: float = 1.0
    limit_pref_inter: float = 1.0
    magnitude_scale: float | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.startswith(("start_pref", "limit_pref")):
                _check(getattr(self, f.name) >= 0, f.name, "must be >= 0")
        _check(self.magnitude_scale is None or self.magnitude_scale > 0, "magnitude_scale",
               "must be > 0 (eV) or absent")


@dataclass(frozen=True)
class DataConfig:
    """``training.training_data`` / ``training.validation_data``.

    ``systems``: extxyz (or any ASE-readable) files, DeePMD npy system folders, and DFT dataset
    folders (``frames.extxyz`` + ``hamiltonians.npz``, see docs/dft.md), which also give
    Hamiltonian labels. ``split``: keep only frames whose ``info["split"]`` equals it (the DFT
    dataset's ``train`` / ``valid``). ``numb_btch``: validation batches evaluated at every display
    step (validation only). ``oversample``: ``{glob: factor}`` repeats the frames whose
    ``info["config"]`` matches the glob ``factor`` times in every epoch (training only; e.g. the
    registry scan, whose small energy differences drown in the other frames' noise). ``exclude``:
    globs on ``info["config"]``; matching frames are left out (e.g. ``["blgal_*"]``, strongly
    distorted active-learning frames that a small network cannot fit without losing accuracy near
    equilibrium, docs/model.md); each glob must match a frame. ``weights``: ``{glob: w}`` multiplies
    the force-field loss of the matching training frames by ``w`` (the smallest matching weight
    wins; the Hamiltonian loss is not weighted).
    """

    systems: tuple[str, ...]
    numb_btch: int = 1
    split: str | None = None
    oversample: dict[str, int] | None = None
    exclude: tuple[str, ...] = ()
    weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        _check(len(self.systems) > 0, "systems", "must list at least one file or folder")
        if self.oversample is not None:
            _check(all(int(v) >= 1 for v in self.oversample.values()), "oversample", "factors must be >= 1")
        if self.weights is not None:
            _check(all(float(v) >= 0 for v in self.weights.values()), "weights", "weights must be >= 0")
        _check(self.numb_btch >= 1, "numb_btch", "must be >= 1")
        _check(self.split is None or len(self.split) > 0, "split", "must be a non-empty name")


@dataclass(frozen=True)
class TrainingConfig:
    """``training``."""

    training_data: DataConfig
    validation_data: DataConfig | None = None
    numb_steps: int = 1000
    batch_size: int = 1
    disp_freq: int = 100
    save_freq: int = 1000
    seed: int = 1
    disp_file: str = "lcurve.out"
    tensorboard: bool = True
    tensorboard_log_dir: str = "tensorboard"
    init_model: str | None = None

    def __post_init__(self) -> None:
        for name in ("numb_steps", "batch_size", "disp_freq", "save_freq"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")


@dataclass(frozen=True)
class Config:
    """The whole training configuration."""

    model: ModelConfig
    training: TrainingConfig
    learning_rate: LearningRateConfig = field(default_factory=LearningRateConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        h = self.model.hamiltonian
        if h is None and self.loss.hamiltonian is not None:
            raise ConfigError("loss.hamiltonian: needs a model.hamiltonian section (the heads to train)")
        if h is not None and self.loss.hamiltonian is None:
            object.__setattr__(self, "loss", dataclasses.replace(self.loss, hamiltonian=HamiltonianLossConfig()))
        if h is not None and h.descriptor_mode == "frozen" and self.training.init_model is None:
            raise ConfigError("model.hamiltonian.descriptor_mode: 'frozen' trains the heads on a fixed, already "
                              "trained force field; set training.init_model to its checkpoint, or use 'joint'")

    @property
    def has_hamiltonian(self) -> bool:
        return self.model.hamiltonian is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists instead of tuples), suitable for YAML and checkpoints."""
        return _plain(dataclasses.asdict(self))


# ---------------------------------------------------------------------------- loading
class _FieldError(ValueError):
    def __init__(self, key: str, msg: str) -> None:
        super().__init__(msg)
        self.key = key


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise _FieldError(key, msg)


def _check_activation(name: str) -> None:
    known = ("tanh", "gelu", "relu", "softplus", "sigmoid", "linear", "none")
    _check(name in known, "activation_function", f"unknown {name!r}; choose from {list(known)}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], path)
        raise TypeError(f"unsupported annotation {tp}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is dict:
        (key_tp, val_tp) = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return {_convert(k, key_tp, path): _convert(v, val_tp, _join(path, str(k))) for k, v in value.items()}
    if origin is tuple:
        (elem, _) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return tuple(_convert(v, elem, f"{path}[{k}]") for k, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp}")


def _build(cls: type, data: Any, path: str) -> Any:
    where = path or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {sorted(fields)}"
            raise ConfigError(f"unknown key '{_join(path, str(key))}'{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{_join(path, name)}'")
    try:
        return cls(**kwargs)
    except _FieldError as exc:
        raise ConfigError(f"{_join(path, exc.key)}: {exc}") from None


def parse_config(data: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> Config:
    """Validate a config dict; relative data paths are resolved against ``base_dir`` when given."""
    cfg = _build(Config, data, "")
    if base_dir is None:
        return cfg
    base = Path(base_dir)

    def resolve(dc: DataConfig | None) -> DataConfig | None:
        if dc is None:
            return None
        return dataclasses.replace(dc, systems=tuple(
            s if os.path.isabs(s) else str((base / s).resolve()) for s in dc.systems
        ))

    init = cfg.training.init_model
    training = dataclasses.replace(
        cfg.training,
        training_data=resolve(cfg.training.training_data),
        validation_data=resolve(cfg.training.validation_data),
        init_model=init if init is None or os.path.isabs(init) else str((base / init).resolve()),
    )
    return dataclasses.replace(cfg, training=training)


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a YAML config; data paths are relative to the file's folder."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    if data is None:
        raise ConfigError(f"{p}: empty config")
    try:
        return parse_config(data, base_dir=p.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (atomically)."""
    import yaml

    from wander.io.atomic import atomic_path

    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(text)
