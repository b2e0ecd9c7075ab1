"""Training loop: Adam + exp learning rate, DeePMD-style learning curve, checkpoints, exact resume.

Outputs in the run folder:

- ``config.yaml``    the resolved config
- ``lcurve.out``     learning curve (``training.disp_file``), one line per display step
- ``tensorboard/``   TensorBoard scalars (``training.tensorboard``)
- ``checkpoint.pt``  latest checkpoint (every ``save_freq`` steps and at the end)
- ``model.pt``       final model (same format)

With a ``model.hamiltonian`` section the model is a :class:`~wander.nn.dual.DualModel` and the loss
gains the per-category Hamiltonian term (frames without Hamiltonian labels skip it). In
``descriptor_mode: frozen`` only the heads are optimised; the force field comes from
``training.init_model`` and stays unchanged (its energy / force errors are still reported). In
``joint`` mode everything is optimised with the sum of both losses. ``training.init_model`` (a
``wander train`` checkpoint with the same force-field settings) initialises the force field, and the
heads too when it has heads of the same settings.

Resuming from ``checkpoint.pt`` restores parameters, optimizer, step, the torch RNG and the batch
sampler, and truncates ``lcurve.out`` to the checkpoint's step, so a run that was killed and resumed
produces the same parameters and learning curve as an uninterrupted run (tested bit for bit).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from wander.data.graph import AtomGraph
from wander.nn.model import PRECISIONS, ForceField
from wander.train.checkpoint import load_checkpoint, save_checkpoint
from wander.train.config import Config, parse_config, save_config
from wander.train.data import Batch, FrameSet, config_glob_matches, load_frame_set, make_batch
from wander.train.loss import EnergyLoss, ExpLearningRate, HamiltonianLoss

__all__ = ["BatchSampler", "train", "evaluate"]

log = logging.getLogger("wander.train")

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"


class BatchSampler:
    """Shuffled mini-batches of frame indices, epoch by epoch, from a seeded generator.

    Its complete state (generator, current permutation, cursor) is saved in checkpoints.
    """

    def __init__(self, n_frames: int, batch_size: int, seed: int) -> None:
        if n_frames < 1:
            raise ValueError("no training frames")
        self.n_frames = int(n_frames)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.perm = torch.randperm(self.n_frames, generator=self.generator)
        self.cursor = 0

    def next_batch(self) -> list[int]:
        out: list[int] = []
        while len(out) < self.batch_size:
            if self.cursor == self.n_frames:
                self.perm = torch.randperm(self.n_frames, generator=self.generator)
                self.cursor = 0
            take = min(self.batch_size - len(out), self.n_frames - self.cursor)
            out.extend(int(k) for k in self.perm[self.cursor : self.cursor + take])
            self.cursor += take
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "cursor": self.cursor,
                "n_frames": self.n_frames}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["n_frames"]) != self.n_frames:
            raise ValueError(f"checkpoint sampler has {state['n_frames']} frames, data has {self.n_frames}")
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone()
        self.cursor = int(state["cursor"])


def _batches(frames: FrameSet, batch_size: int, limit: int | None = None) -> list[Batch]:
    n = len(frames) if not limit else min(len(frames), limit * batch_size)
    return [make_batch(frames, range(k, min(k + batch_size, n))) for k in range(0, n, batch_size)]


def _step_loss(model: torch.nn.Module, batch: Batch | AtomGraph, loss_fn: EnergyLoss,
               ham_loss: HamiltonianLoss | None, lr: float, compute_virial: bool, ff_mode: str,
               create_graph: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and metrics of one batch.

    ``ff_mode``: ``"train"`` (force-field term in the loss), ``"report"`` (metrics only) or ``"skip"``.
    """
    if isinstance(batch, AtomGraph):
        batch = Batch(batch)
    metrics: dict[str, float] = {}
    loss = batch.graph.positions.new_zeros(())
    if ff_mode != "skip":
        ff = model.forcefield if ham_loss is not None else model
        pred = ff(batch.graph, compute_virial=compute_virial, create_graph=create_graph and ff_mode == "train")
        ff_loss, metrics = loss_fn(pred, batch.graph, lr, batch.weight)
        if ff_mode == "train":
            loss = ff_loss
    if ham_loss is not None and batch.has_hamiltonian:
        with torch.set_grad_enabled(create_graph):
            blocks = model.hamiltonian_blocks(batch.graph, batch.pair_index, batch.pair_R, batch.layer)
            h_loss, h_metrics = ham_loss(blocks, batch.blocks, batch.mask, batch.category, lr)
        loss = loss + h_loss
        metrics.update(h_metrics)
    metrics["rmse"] = float(loss.detach().clamp(min=0).sqrt())
    return loss, metrics


def evaluate(
    model: torch.nn.Module, batches: Sequence[Batch | AtomGraph], loss_fn: EnergyLoss, lr: float,
    compute_virial: bool, ham_loss: HamiltonianLoss | None = None, train_ff: bool = True,
) -> dict[str, float]:
    """Metrics averaged over batches (RMSEs combined as root of mean squares)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for batch in batches:
        _, metrics = _step_loss(model, batch, loss_fn, ham_loss, lr, compute_virial,
                                "train" if train_ff else "report", create_graph=False)
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v * v
            counts[k] = counts.get(k, 0) + 1
    return {k: (sums[k] / counts[k]) ** 0.5 for k in sums}


class _Curve:
    """``lcurve.out`` writer (DeePMD column layout)."""

    def __init__(self, path: Path, has_val: bool, has_virial: bool, extra: Sequence[str] = ()) -> None:
        self.path = path
        self.keys = ["rmse", "rmse_e", "rmse_f"] + (["rmse_v"] if has_virial else []) + list(extra)
        self.has_val = has_val

    def _columns(self) -> list[str]:
        cols = []
        for k in self.keys:
            cols += ([f"{k}_val"] if self.has_val else []) + [f"{k}_trn"]
        return cols

    def header(self) -> str:
        cols = self._columns()
        return "# " + "step".rjust(5) + "".join(c.rjust(max(13, len(c) + 2)) for c in cols) + "lr".rjust(11) + "\n"

    def line(self, step: int, trn: dict[str, float], val: dict[str, float] | None, lr: float) -> str:
        vals = []
        for k in self.keys:
            if self.has_val:
                vals.append((val or {}).get(k, float("nan")))
            vals.append(trn.get(k, float("nan")))
        widths = [max(13, len(c) + 2) for c in self._columns()]
        return f"{step:7d}" + "".join(f"{v:{w}.4e}" for v, w in zip(vals, widths)) + f"{lr:11.3e}\n"

    def start(self, resume_step: int | None) -> None:
        lines = [self.header()]
        if resume_step is not None and self.path.is_file():
            for text in self.path.read_text().splitlines(keepends=True):
                if text.startswith("#"):
                    continue
                if int(text.split()[0]) <= resume_step:
                    lines.append(text)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.writelines(lines)
        os.replace(tmp, self.path)

    def append(self, text: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(text)
            fh.flush()


_RESUME_MUST_MATCH = ("model", "learning_rate", "loss")
_RESUME_TRAINING_MUST_MATCH = ("training_data", "batch_size", "seed", "numb_steps")


def _check_resume_config(saved: dict[str, Any], cfg: Config) -> None:
    current = cfg.to_dict()
    saved = parse_config(saved).to_dict()   # defaults of keys newer than the checkpoint filled in
    for key in _RESUME_MUST_MATCH:
        if saved[key] != current[key]:
            raise ValueError(f"cannot resume: config section '{key}' differs from the checkpoint's")
    for key in _RESUME_TRAINING_MUST_MATCH:
        if saved["training"][key] != current["training"][key]:
            raise ValueError(f"cannot resume: 'training.{key}' differs from the checkpoint's")


# heads settings that may differ from init_model's: a checkpoint whose heads differ only in these
# still initialises the heads. r_cut makes it a warm start, not the same function (the envelope and
# the pair-distance Gaussians stretch to the new cutoff), so 7 A heads can start a 9 A run that then
# trains; pair_overlap off -> on starts from the same function (zero weights on the new invariants)
_HEADS_INIT_MAY_DIFFER = {"r_cut", "seed", "pair_overlap"}


def _pad_overlap_columns(state: dict[str, torch.Tensor], heads: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` of heads without ``pair_overlap`` for heads with it: the first layers of the pair
    networks get zero columns for the overlap invariants (their last inputs), so the warm-started
    heads compute exactly what the saved ones did until training moves those weights."""
    mine = heads.state_dict()
    out = dict(state)
    for key, value in state.items():
        new = mine.get(key)
        if (new is not None and value.ndim == 2 and new.ndim == 2 and value.shape[0] == new.shape[0]
                and new.shape[1] == value.shape[1] + heads.n_overlaps):
            out[key] = torch.cat([value, value.new_zeros(value.shape[0], heads.n_overlaps)], dim=1)
    return out


def _init_from(model: torch.nn.Module, path: str, cfg: Config) -> dict[str, Any]:
    """Load the force field (and matching heads) of checkpoint ``path``; returns its metadata."""
    payload = load_checkpoint(path)
    saved, current = payload["config"]["model"], cfg.to_dict()["model"]
    for key in ("type_map", "descriptor", "fitting_net"):
        if saved[key] != current[key]:
            raise ValueError(f"training.init_model {path}: model.{key} differs from this config's; the force "
                             "field must have the same settings")
    ff = model.forcefield if cfg.has_hamiltonian else model
    ff.load_state_dict(payload["state_dict"])
    entry = payload.get("hamiltonian")
    if cfg.has_hamiltonian and isinstance(entry, dict):
        from wander.nn.hamiltonian.heads import HeadsConfig

        mine = {k: v for k, v in model.heads.config.to_dict().items() if k != "descriptor_mode"}
        theirs = {k: v for k, v in HeadsConfig.from_dict(entry["heads_config"]).to_dict().items()
                  if k != "descriptor_mode"}          # through from_dict: defaults of newer keys
        differ = sorted(k for k in mine if mine[k] != theirs.get(k))
        gains_overlaps = mine["pair_overlap"] and not theirs["pair_overlap"]
        loses_overlaps = theirs["pair_overlap"] and not mine["pair_overlap"]
        if not set(differ) - _HEADS_INIT_MAY_DIFFER and not loses_overlaps:
            state = entry["state_dict"]
            if gains_overlaps:
                state = _pad_overlap_columns(state, model.heads)
            model.heads.load_state_dict(state)
            changed = ", ".join(f"{k} {theirs[k]} -> {mine[k]}" for k in differ if k != "seed")
            log.info("heads initialised from %s%s", path, f" ({changed})" if changed else "")
        else:
            log.info("heads not initialised from %s: its heads differ in %s", path, ", ".join(differ))
    log.info("force field initialised from %s", path)
    return dict(payload.get("metadata", {}))


def train(
    cfg: Config,
    output_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> torch.nn.Module:
    """Train as configured; returns the trained model (eval mode): a ForceField, or a DualModel
    when the config has a ``model.hamiltonian`` section.

    ``on_step(step)`` is called after every completed step (after any checkpoint of that step).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tcfg = cfg.training
    model_dict = cfg.to_dict()["model"]
    dtype = PRECISIONS[cfg.model.descriptor.precision]
    type_map = list(cfg.model.type_map)
    rcut = cfg.model.neighbor_cutoff
    hcfg = cfg.model.hamiltonian

    train_set = load_frame_set(tcfg.training_data.systems, type_map, rcut, dtype=dtype,
                               split=tcfg.training_data.split, hamiltonian=hcfg)
    train_set = _exclude(train_set, tcfg.training_data.exclude, "training_data")
    if tcfg.training_data.weights:
        _weigh(train_set, tcfg.training_data.weights)
    if len(train_set) == 0:
        raise ValueError("no training frames")
    if tcfg.training_data.oversample:
        train_set = _oversample(train_set, tcfg.training_data.oversample)
    val_batches: list[Batch] = []
    if tcfg.validation_data is not None:
        val_set = load_frame_set(tcfg.validation_data.systems, type_map, rcut, dtype=dtype,
                                 split=tcfg.validation_data.split, hamiltonian=hcfg)
        val_set = _exclude(val_set, tcfg.validation_data.exclude, "validation_data")
        val_batches = _batches(val_set, tcfg.batch_size, tcfg.validation_data.numb_btch)
    train_graphs = train_set.graphs
    has_virial = any("virial" in g.labels for g in train_graphs)
    log.info("training frames: %d, validation batches: %d", len(train_graphs), len(val_batches))
    if hcfg is not None:
        log.info("frames with Hamiltonian labels: %d of %d", train_set.n_hamiltonian, len(train_set))
        if train_set.n_hamiltonian == 0:
            raise ValueError("model.hamiltonian is set but no training frame has a Hamiltonian label "
                             "(use DFT dataset folders with hamiltonians.npz as training data)")

    torch.manual_seed(tcfg.seed)
    if hcfg is None:
        model = ForceField.from_config(model_dict)
        params = list(model.parameters())
        ham_loss = None
        frozen = False
    else:
        from wander.nn.dual import DualModel

        model = DualModel.from_config(model_dict)
        frozen = hcfg.descriptor_mode == "frozen"
        for prm in model.forcefield.parameters():
            prm.requires_grad_(not frozen)
        params = model.trainable_parameters()
        ham_loss = HamiltonianLoss(cfg.loss.hamiltonian, cfg.learning_rate.start_lr)
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate.start_lr)
    sampler = BatchSampler(len(train_graphs), tcfg.batch_size, tcfg.seed)
    schedule = ExpLearningRate.from_config(cfg.learning_rate, tcfg.numb_steps)
    loss_fn = EnergyLoss(cfg.loss, cfg.learning_rate.start_lr)
    metadata: dict[str, Any] = {}

    start_step = 0
    ckpt_path = out / CHECKPOINT_NAME
    if resume:
        payload = load_checkpoint(ckpt_path)
        _check_resume_config(payload["config"], cfg)
        ff = model.forcefield if hcfg is not None else model
        ff.load_state_dict(payload["state_dict"])
        if hcfg is not None:
            model.heads.load_state_dict(payload["hamiltonian"]["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        sampler.load_state_dict(payload["rng"]["sampler"])
        torch.set_rng_state(payload["rng"]["torch"])
        start_step = int(payload["step"])
        metadata = {k: v for k, v in payload["metadata"].items() if k == "statistics"}
        log.info("resumed from %s at step %d", ckpt_path, start_step)
    elif tcfg.init_model is not None:
        init_meta = _init_from(model, tcfg.init_model, cfg)
        metadata = {k: v for k, v in init_meta.items() if k == "statistics"}
        metadata["init_model"] = str(tcfg.init_model)
        save_config(cfg, out / "config.yaml")
    else:
        stat_gen = torch.Generator().manual_seed(tcfg.seed)
        n_stat = min(len(train_graphs), cfg.model.data_stat_nbatch * tcfg.batch_size)
        pick = torch.randperm(len(train_graphs), generator=stat_gen)[:n_stat].tolist()
        ff = model.forcefield if hcfg is not None else model
        if ff.interlayer is not None:
            metadata_il = _fit_interlayer(ff, train_set, cfg.model.interlayer)
        stats = ff.compute_statistics([train_graphs[k] for k in pick])
        if not stats["sel_ok"]:
            log.warning("sel %s is smaller than the largest neighbour counts %s in the data; the model "
                        "stays smooth but differs from DeePMD-kit's truncated lists",
                        list(cfg.model.descriptor.sel), stats["max_neighbors"])
        metadata = {"statistics": {"frames": n_stat, "max_neighbors": stats["max_neighbors"]}}
        if ff.interlayer is not None:
            metadata["statistics"]["interlayer_fit"] = metadata_il
        save_config(cfg, out / "config.yaml")

    extra: list[str] = []
    if hcfg is not None:
        from wander.nn.hamiltonian.categories import CATEGORIES

        extra = [f"rmse_{c}" for c in CATEGORIES if c != "inter" or hcfg.layered]
    curve = _Curve(out / tcfg.disp_file, bool(val_batches), has_virial, extra)
    curve.start(start_step if resume else None)
    writer = None
    if tcfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / tcfg.tensorboard_log_dir),
                                   purge_step=start_step + 1 if resume else None)
        except ImportError:  # tensorboard is an optional extra
            log.warning("tensorboard is not installed; no TensorBoard logs")

    from tqdm import tqdm

    bar = tqdm(total=tcfg.numb_steps, initial=start_step, disable=not progress, desc="train",
               dynamic_ncols=True, leave=False)

    def save(path: Path, step: int) -> None:
        save_checkpoint(path, cfg, model, step, optimizer=optimizer,
                        rng={"torch": torch.get_rng_state(), "sampler": sampler.state_dict()},
                        metadata=metadata)

    try:
        for step in range(start_step + 1, tcfg.numb_steps + 1):
            lr = schedule(step - 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            display = step == 1 or step % tcfg.disp_freq == 0
            batch = make_batch(train_set, sampler.next_batch())
            model.train()
            if frozen:
                model.forcefield.eval()
            ff_mode = "train" if not frozen else ("report" if display else "skip")
            loss, trn = _step_loss(model, batch, loss_fn, ham_loss, lr, has_virial, ff_mode, create_graph=True)
            optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
                optimizer.step()
            bar.update(1)
            if display:
                model.eval()
                val = evaluate(model, val_batches, loss_fn, lr, has_virial, ham_loss, not frozen) \
                    if val_batches else None
                curve.append(curve.line(step, trn, val, lr))
                bar.set_postfix(loss=f"{trn['rmse']:.3e}", lr=f"{lr:.1e}")
                if writer is not None:
                    for k, v in trn.items():
                        writer.add_scalar(f"train/{k}", v, step)
                    for k, v in (val or {}).items():
                        writer.add_scalar(f"valid/{k}", v, step)
                    writer.add_scalar("lr", lr, step)
                    writer.flush()
            if step % tcfg.save_freq == 0 or step == tcfg.numb_steps:
                save(ckpt_path, step)
            if on_step is not None:
                on_step(step)
        final_step = max(start_step, tcfg.numb_steps)
        save(out / MODEL_NAME, final_step)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return model.eval()


def _fit_interlayer(ff, train_set, icfg) -> dict[str, Any]:
    """Fit the interlayer term to the training frames named by ``icfg.fit_configs`` (one energy offset
    for all of them, or one per interlayer distance: ``icfg.fit_offsets``); returns the fit report
    for the checkpoint metadata."""
    import fnmatch

    from wander.nn.interlayer import fit_interlayer

    if icfg.fit_configs is None:
        log.info("interlayer term: not fitted (fit_configs is null), parameters %s", ff.interlayer.parameter_dict())
        return {"fitted": False, "params": ff.interlayer.parameter_dict()}
    pick, seen = [], set()
    for k, a in enumerate(train_set.atoms):  # each frame once: oversampled copies share their graph
        if fnmatch.fnmatch(str(a.info.get("config", "")), icfg.fit_configs) and id(train_set.graphs[k]) not in seen:
            seen.add(id(train_set.graphs[k]))
            pick.append(k)
    if not pick:
        raise ValueError(f"model.interlayer.fit_configs {icfg.fit_configs!r} matches no training frame "
                         "(info['config']); point it at the registry-scan frames or set it to null")
    groups = [int(round(float(np.ptp(train_set.atoms[k].positions[:, 2])) * 100)) for k in pick]
    log.info("fitting the interlayer term to %d frames (%d distances, %s energy offset)", len(pick),
             len(set(groups)), icfg.fit_offsets)
    if icfg.fit_offsets == "one":
        groups = None
    rep = fit_interlayer(ff.interlayer, [train_set.graphs[k] for k in pick], groups=groups,
                         force_weight=icfg.force_weight, steps=icfg.fit_steps)
    log.info("interlayer fit: energy RMSE %.3f -> %.3f meV, in-plane force RMSE %.2f -> %.2f meV/A",
             rep["energy_rmse_meV_start"], rep["energy_rmse_meV_fit"],
             rep["force_rmse_meV_A_start"], rep["force_rmse_meV_A_fit"])
    return {"fitted": True, **rep}


def _exclude(frames: FrameSet, globs: tuple[str, ...], where: str) -> FrameSet:
    """The frames whose ``info["config"]`` matches none of ``globs``."""
    if not globs:
        return frames
    hits = config_glob_matches(frames.atoms, globs, f"training.{where}.exclude: {{glob}} matches no frame")
    keep = [k for k, h in enumerate(hits) if not h]
    log.info("%s: %d of %d frames left after exclude %s", where, len(keep), len(hits), list(globs))
    return frames.subset(keep)


def _weigh(frames: FrameSet, weights: dict[str, float]) -> None:
    """Set the loss weight of the frames whose ``info["config"]`` matches a glob (the smallest wins)."""
    hits = config_glob_matches(frames.atoms, list(weights),
                               "training.training_data.weights: {glob} matches no training frame")
    for k, h in enumerate(hits):
        if h:
            frames.weight[k] = min(float(weights[g]) for g in h)
    log.info("loss weights: %s", {g: sum(g in h for h in hits) for g in weights})


def _oversample(frames: FrameSet, factors: dict[str, int]) -> FrameSet:
    """Repeat the frames whose ``info["config"]`` matches a glob of ``factors`` (the largest factor wins)."""
    hits = config_glob_matches(frames.atoms, list(factors),
                               "training.training_data.oversample: {glob} matches no training frame")
    index = []
    for k, h in enumerate(hits):
        index += [k] * max([int(factors[g]) for g in h] or [1])
    out = frames.subset(index)
    log.info("oversampled training frames: %d -> %d", len(frames), len(out))
    return out
