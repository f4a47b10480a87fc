"""The trainer: one config-driven loop for teachers and for students distilled from a teacher.

    from kdsharp.train import load_config, train
    result = train(load_config("configs/teacher_quick.yaml", ["schedule.iters=200"]))

AdamW + linear warm-up/cosine schedule, gradient clipping, EMA weights, AMP (bf16/fp16) and
channels_last on CUDA, seeded and deterministic on CPU, DDP under torchrun. Every ``val.every``
iterations the EMA model is scored (PSNR/SSIM on clamped 8-bit outputs) on a held-out set; the run
folder ``out_dir/name`` gets ``last.pth``, ``best.pth``, ``config.yaml``, CSV + TensorBoard logs
and, at the end, ``<name>.safetensors`` (fp16, via :func:`kdsharp.io.weights.save_weights`).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from kdsharp.console import info, progress, warn
from kdsharp.errors import ConfigError, InputError, KdsharpError
from kdsharp.losses import build_loss
from kdsharp.train import logs
from kdsharp.train.builders import build_val_items, frozen_teacher, make_train_dataset, model_from_config, val_groups
from kdsharp.train.checkpoint import (
    check_state_dict,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
    strip_module_prefix,
)
from kdsharp.train.config import config_hash, dump_config
from kdsharp.train.distributed import DistInfo, any_rank, barrier, cleanup, setup_distributed
from kdsharp.train.loaders import (
    CachedTriples,
    SeededItems,
    StepBatchSampler,
    build_teacher_cache,
    cache_key,
    labelling_autocast,
    load_extra_banks,
    load_teacher_cache,
    loader_workers,
    make_loader,
    seed_everything,
    start_workers,
    stop_workers,
    teacher_stamp,
)
from kdsharp.train.optim import ModelEMA, timed_cosine, warmup_cosine
from kdsharp.train.selection import selection_score


@dataclass
class TrainResult:
    """What a finished run produced. Metrics are dicts ``{'psnr', 'ssim'}``."""

    run_dir: Path
    step: int
    val: dict = field(default_factory=dict)  # final model (EMA if on)
    best: dict = field(default_factory=dict)  # best val seen (val.select), with its 'step' and 'score'
    baselines: dict = field(default_factory=dict)  # 'input', 'start' (and 'teacher') on the same val set
    export: Path | None = None  # the final (EMA) weights
    best_export: Path | None = None  # the best validated (EMA) weights, when not the final ones
    main: bool = True  # False on DDP ranks > 0 (which neither validate nor save)


class TrainingStopped(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a run after a step: ``last.pth`` is saved and the weights are
    exported (the last EMA weights and the best validated ones, as at the end of a run, without a
    last validation); ``result`` says what the run had reached (its ``val``: the last validation),
    ``signum`` which signal stopped it (``signal.SIGINT`` or ``signal.SIGTERM``)."""

    def __init__(self, result: TrainResult, signum: int = signal.SIGINT):
        super().__init__(f"stopped at step {result.step}")
        self.result = result
        self.signum = signum


def run_folder(cfg: dict) -> Path:
    """``out_dir/name``: where a new run (or ``resume=auto``) keeps its files."""
    return Path(cfg["out_dir"]) / (cfg["name"] or "run")


class TrainingAborted(KeyboardInterrupt):
    """A second Ctrl-C (or SIGTERM) while a run was already stopping: it ends at once, without saving
    ``last.pth`` (a ``last.pth`` saved before is kept whole); ``signum``: the signal."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class Trainer:
    """Builds everything a run needs from ``cfg`` (see :mod:`kdsharp.train.config`); ``fit()`` runs it.

    Args:
        cfg: a full config dict from :func:`kdsharp.train.config.load_config`.
        resume: None, 'auto' (``out_dir/name/last.pth`` if it exists) or a checkpoint path.
    """

    def __init__(self, cfg: dict, resume: str | Path | None = None):
        self.cfg = cfg
        self.dist: DistInfo = setup_distributed(cfg["device"])
        self.device = self.dist.device
        self.main = self.dist.is_main
        self._prev_det = torch.are_deterministic_algorithms_enabled()
        if cfg["threads"]:
            torch.set_num_threads(int(cfg["threads"]))
        self._setup_determinism()
        seed_everything(int(cfg["seed"]))
        self.run_dir, ckpt_path = self._resolve_run_dir(resume)
        cuda = self.device.type == "cuda"
        amp = cfg["amp"] if cuda and cfg["amp"] not in (None, False, "off") else None
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(amp))
        self.channels_last = cuda and bool(cfg["channels_last"])

        self.model, self.arch = model_from_config(cfg["model"], self.device, self.channels_last)
        self.teacher: nn.Module | None = None
        self.teacher_spec = cfg.get("teacher")
        if self.teacher_spec:
            self.teacher = frozen_teacher(str(self.teacher_spec), self.device, self.channels_last)
        self.loss = self._build_loss().to(self.device)
        fd = self.loss.feature_distill
        self.adapters = fd.adapters if fd is not None else None
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if self.adapters is not None:
            self.params += list(self.adapters.parameters())
        o = cfg["optim"]
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=float(o["lr"]),
            betas=tuple(o["betas"]),
            weight_decay=float(o["weight_decay"]),
            eps=float(o["eps"]),
        )
        s = cfg["schedule"]
        self.iters = int(s["iters"])
        self.step = 0
        self.budget_s = float(s.get("max_minutes") or 0) * 60.0
        self._t0 = time.monotonic()
        factor = warmup_cosine(int(s["warmup"]), self.iters, float(s["min_lr_ratio"]))
        if self.budget_s:
            factor = timed_cosine(int(s["warmup"]), float(s["min_lr_ratio"]), self.progress)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.ema = ModelEMA(self.model, cfg["ema"]) if cfg["ema"] else None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.step = 0
        self.best: dict[str, float] = {}
        self.start_val: dict[str, float] = {}  # the val of the weights the run started from (step 0)
        if self.main:
            from kdsharp.data.sources import warn_test_split

            warn_test_split(cfg["data"]["sources"], "data.sources")
            if not cfg["val"]["path"]:
                warn_test_split(cfg["val"]["sources"], "val.sources")
        # the val set first: a bad val source fails before the teacher labels the cache's crops
        self.val_items = build_val_items(cfg) if self.main else []
        self.val_groups = val_groups(cfg, len(self.val_items)) if self.main else None  # presets of bundle pairs
        self.train_ds = self._build_train_data()
        self.logger = logs.RunLogger(self.run_dir, enabled=self.main)
        if ckpt_path is not None:
            self._load(ckpt_path)
        self.logger.restore(self.step)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self._stop = False
        self._signum = signal.SIGINT  # the signal that stopped the run (another rank's: SIGINT)
        self._saved_step: int | None = None  # the step of the last.pth this run saved

    def progress(self) -> float:
        """How far the run is, in [0, 1]: steps done / iters, or elapsed / time budget if further."""
        done = self.step / max(1, self.iters)
        if self.budget_s:
            done = max(done, (time.monotonic() - self._t0) / self.budget_s)
        return min(1.0, done)

    def _out_of_time(self) -> bool:
        return bool(self.budget_s) and time.monotonic() - self._t0 >= self.budget_s

    def publish(self, metrics: dict) -> Path | None:
        """Export the EMA weights now and copy them to ``publish.dir`` (rank 0; atomic)."""
        if not self.main:
            return None
        path = self.export(metrics)
        target = self.cfg["publish"]["dir"]
        if target:
            from kdsharp.io.atomic import atomic_path

            dest = Path(target) / path.name
            with atomic_path(dest) as tmp:
                shutil.copyfile(path, tmp)
            return dest
        return path

    # ------------------------------------------------------------------ setup helpers
    def _setup_determinism(self) -> None:
        det = bool(self.cfg["deterministic"])
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not det
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not det
            if det:
                import os

                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(det, warn_only=True)

    def _resolve_run_dir(self, resume) -> tuple[Path, Path | None]:
        cfg = self.cfg
        run_dir = run_folder(cfg)
        ckpt = None
        if resume in ("auto", True):
            ckpt = run_dir / "last.pth"
            if not ckpt.is_file():
                info(f"no checkpoint in {run_dir} yet: starting from scratch")
                ckpt = None
        elif resume:
            ckpt = Path(resume)
            if ckpt.is_dir():
                ckpt = ckpt / "last.pth"
            if not ckpt.is_file():
                raise InputError(
                    ckpt, "checkpoint not found", "pass last.pth of a run folder, or resume=auto", params=["resume"]
                )
            run_dir = ckpt.parent
        elif (run_dir / "last.pth").exists():
            raise ConfigError(
                f"{run_dir} already holds a run (last.pth): continue it with resume=auto, "
                "or start a new one with the config key name=NEW_NAME or out_dir=DIR",
                params=["resume", "out_dir"],
            )
        if self.main:
            from kdsharp.io.atomic import atomic_path, ensure_writable_dir

            ensure_writable_dir(run_dir)
            if cfg["publish"]["dir"]:  # checked now, not when the first export is copied there
                ensure_writable_dir(Path(cfg["publish"]["dir"]))
            with atomic_path(run_dir / "config.yaml") as tmp:
                tmp.write_text(dump_config(cfg), encoding="utf-8")
        return run_dir, ckpt

    def _build_loss(self):
        cfg, t = self.cfg, self.teacher
        loss = build_loss(
            cfg["loss"],
            feature_net=t,
            student_channels=getattr(self.model, "feature_channels", None),
            teacher_channels=getattr(t, "feature_channels", None) if t is not None else None,
        )
        if (loss.uses_teacher_output or loss.uses_features) and t is None:
            raise ConfigError(
                "the distillation loss terms need a teacher: pass teacher=NAME|PATH, or set loss.distill_*.weight=0",
                params=["teacher"],
            )
        if loss.uses_features and cfg["teacher_cache"]["enabled"]:
            raise ConfigError(
                "teacher_cache stores teacher outputs only, not features: set "
                "teacher_cache.enabled=false or loss.distill_feature.weight=0"
            )
        return loss

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _build_train_data(self):
        cfg = self.cfg
        tc = cfg["teacher_cache"]
        if not tc["enabled"]:
            return SeededItems(make_train_dataset(cfg), int(cfg["seed"]))
        assert self.teacher is not None  # validate_config: teacher_cache.enabled needs a teacher
        d = cfg["data"]
        teacher_id = teacher_stamp(str(self.teacher_spec))
        key = cache_key(
            str(self.teacher_spec),
            {k: d[k] for k in ("sources", "degradation", "crop")},
            int(tc["size"]),
            int(cfg["seed"]),
            stamp=teacher_id,
        )
        path = Path(tc["path"]) if tc["path"] else Path(cfg["out_dir"]) / "cache" / f"teacher_{key}.safetensors"
        tensors = load_teacher_cache(path, key) if self.main else None
        if self.main and tensors is None:
            ds = make_train_dataset(cfg, length=int(tc["size"]))
            autocast, precision = labelling_autocast(
                self.device, tc.get("bf16", "auto"), self._autocast, str(cfg["amp"]) if self.amp_dtype else "fp32"
            )
            info(f"teacher cache: labelling in {precision}")
            tensors = build_teacher_cache(
                self.teacher,
                ds,
                int(tc["size"]),
                int(tc["batch"]),
                self.device,
                path,
                key,
                autocast,
                teacher_id=teacher_id,
            )
        barrier(self.dist)
        if tensors is None:
            tensors = load_teacher_cache(path, key)
            if tensors is None:
                raise InputError(path, "teacher cache missing after rank 0 built it", "use a shared out_dir")
        if tc.get("extra"):
            own = int(tensors["lq"].shape[0])
            tensors = load_extra_banks(list(tc["extra"]), tensors, teacher_id)
            added = int(tensors["lq"].shape[0]) - own
            info(f"teacher cache: {own} crops + {added} from {len(tc['extra'])} extra bank(s)")
        if not self.loss.uses_teacher_output:
            tensors = {k: v for k, v in tensors.items() if k != "teacher_out"}
        return CachedTriples(tensors, augment=bool(tc["augment"]), seed=int(cfg["seed"]))

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The full training state saved as ``last.pth`` / ``best.pth``."""
        return {
            "params": strip_module_prefix(self.model.state_dict()),
            "params_ema": strip_module_prefix(self.ema.module.state_dict()) if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "rng": get_rng_state(),
            "config": self.cfg,
            "arch": self.arch["name"],
            "arch_kwargs": self.arch["kwargs"],
            **self.arch.get("test_time", {}),
            "adapters": self.adapters.state_dict() if self.adapters is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best": dict(self.best),
            "start_val": dict(self.start_val),
        }

    def save(self, name: str = "last.pth") -> Path | None:
        """Write the training state to ``run_dir/name`` (rank 0 only; atomic)."""
        if not self.main:
            return None
        self.logger.flush()
        path = save_checkpoint(self.run_dir / name, self.state_dict())
        if name == "last.pth":
            self._saved_step = self.step
        return path

    def _load(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        check_state_dict(path, self.model, ckpt["params"], f"model '{self.arch['name']}'")
        self.model.load_state_dict(strip_module_prefix(ckpt["params"]))
        if self.ema is not None:
            self.ema.module.load_state_dict(strip_module_prefix(ckpt.get("params_ema") or ckpt["params"]))
        if self.adapters is not None:
            if not ckpt.get("adapters"):
                raise InputError(
                    path, "checkpoint has no feature-distillation adapters", "resume with the loss it was trained with"
                )
            check_state_dict(path, self.adapters, ckpt["adapters"], "distillation adapters")
            self.adapters.load_state_dict(ckpt["adapters"])
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise InputError(
                path, f"optimizer state does not match this run ({e})", "resume with the same model and loss config"
            ) from e
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.best = int(ckpt["step"]), dict(ckpt.get("best") or {})
        self.start_val = dict(ckpt.get("start_val") or {})
        set_rng_state(ckpt["rng"])
        if self.main:
            info(f"resumed {path} at step {self.step}")

    # ------------------------------------------------------------------ training
    def _train_step(self, batch: dict) -> dict[str, float]:
        dev, fmt = self.device, (torch.channels_last if self.channels_last else torch.contiguous_format)
        lq = batch["lq"].to(dev, non_blocking=True).contiguous(memory_format=fmt)
        gt = batch["gt"].to(dev, non_blocking=True)
        feats = self.loss.uses_features
        t_out, t_feats = batch.get("teacher_out"), None
        if t_out is not None:
            t_out = t_out.to(dev, non_blocking=True)
        if self.teacher is not None and ((self.loss.uses_teacher_output and t_out is None) or feats):
            with torch.no_grad(), self._autocast():
                r = self.teacher(lq, return_features=feats)
            live, t_feats = r if feats else (r, None)
            t_out = live.float() if t_out is None else t_out
        with self._autocast():
            r = self.net(lq, return_features=feats)
        out, s_feats = r if feats else (r, None)
        total, terms = self.loss(out.float(), gt, teacher_out=t_out, student_feats=s_feats, teacher_feats=t_feats)
        if not math.isfinite(terms["total"]):
            raise KdsharpError(
                f"the loss became {terms['total']} at step {self.step}: lower optim.lr, "
                "set amp=off, or resume from last.pth"
            )
        self.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(total) if self.scaler else total).backward()
        if self.dist.enabled and self.adapters is not None:  # adapters live outside the DDP module
            for p in self.adapters.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.dist.world
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.params, float(self.cfg["grad_clip"]))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        terms["lr"] = self.optimizer.param_groups[0]["lr"]
        return terms

    @torch.no_grad()
    def validate(self, model: nn.Module | None = None) -> dict:
        """Mean PSNR/SSIM of ``model`` (default: EMA, else raw) on the val set (8-bit quantized)."""
        from kdsharp.train.builders import score

        model = model or (self.ema.module if self.ema else self.model)
        was_training = model.training
        model.eval()
        try:
            return score(lambda x: model(x), self.val_items, self.device, self._autocast, self.val_groups)
        finally:
            model.train(was_training)

    def _selection_score(self, metrics: dict, baselines: dict) -> float:
        """``metrics`` scored by ``val.select`` (:func:`kdsharp.train.selection.selection_score`),
        against the starting weights' validation when the run continued trained weights, else the input's."""
        reference = self.start_val or baselines.get("input")
        return selection_score(metrics, reference, self.cfg["val"]["select"])

    def _validate_and_keep_best(self, baselines: dict) -> dict:
        metrics = self.validate()
        self.logger.val(self.step, metrics)
        score = self._selection_score(metrics, baselines)
        best_score = self.best.get("score", self.best.get("psnr"))  # checkpoints before val.select: psnr
        if not self.best or best_score is None or score > best_score:
            self.best = {**metrics, "score": score, "step": self.step}
            self.save("best.pth")
        line = f"step {self.step}: val PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}"
        if self.cfg["val"]["select"] == "psnr":
            info(f"{line} (best {self.best['psnr']:.2f} dB @ {self.best['step']})")
        else:
            best = f"best {self.best['score']:+.3f} dB @ {self.best['step']}"
            info(f"{line}, worst-group change {score:+.3f} dB ({best})")
        return metrics

    def _on_signal(self, signum, frame):
        if self._stop:  # pressed again while stopping: end now, and say what is on disk
            last = self.run_dir / "last.pth"
            if self._saved_step is not None:
                kept = f"{last} holds step {self._saved_step}"
            else:
                kept = f"{last} is left as it was" if last.is_file() else "no last.pth was saved"
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            msg = f"second {name}: aborting at step {self.step} without saving ({kept})"
            if self.main:
                warn(msg)
            raise TrainingAborted(msg, signum)
        self._stop, self._signum = True, signum
        if self.main:
            warn("stopping after this step and saving last.pth (press Ctrl-C again to abort without saving)")

    def fit(self) -> TrainResult:
        """Train from ``self.step`` to ``schedule.iters``; returns a :class:`TrainResult`.

        Ctrl-C (or SIGTERM) finishes the current step, saves ``last.pth``, exports the weights and
        raises :class:`TrainingStopped` (a KeyboardInterrupt); ``--resume auto`` continues exactly
        from there.
        """
        cfg, d = self.cfg, self.cfg["data"]
        baselines = self._baselines() if self.main else {}
        sampler = StepBatchSampler(
            len(self.train_ds), d["batch"], cfg["seed"], self.step, self.iters, self.dist.rank, self.dist.world
        )
        workers = 0 if isinstance(self.train_ds, CachedTriples) else loader_workers(int(d["workers"]))
        loader = make_loader(self.train_ds, sampler, workers, pin=self.device.type == "cuda")
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:  # an ignored Ctrl-C (background job) stays so
                    handlers[sig] = signal.signal(sig, self._on_signal)
        self.model.train()
        val_every, log_every, save_every = cfg["val"]["every"], cfg["log_every"], cfg["save_every"]
        publish_every = float(cfg["publish"]["every_s"] or 0)
        window: list[dict] = []
        metrics: dict = {}
        self._t0 = last_publish = time.monotonic()  # the time budget counts from the first step
        it = None
        try:
            with progress("it") as bar:
                total = None if self.budget_s else self.iters  # a time budget ends it first: no step ETA
                task = bar.add_task(self._desc(None), total=total, completed=self.step)
                it = start_workers(loader)
                while self.step < self.iters and not any_rank(self._out_of_time(), self.dist):
                    try:
                        batch = next(it)
                    except RuntimeError:
                        if self._stop:  # a worker died from the same Ctrl-C
                            break
                        raise
                    window.append(self._train_step(batch))
                    self.step += 1
                    bar.advance(task)
                    if self.step % log_every == 0 or self.step == self.iters:
                        mean = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
                        self.logger.train(self.step, mean)
                        bar.update(task, description=self._desc(mean))
                        window = []
                    if self.main and val_every and self.step % val_every == 0 and self.step < self.iters:
                        metrics = self._validate_and_keep_best(baselines)
                    if save_every and self.step % save_every == 0 and self.step < self.iters:
                        self.save()
                    if publish_every and time.monotonic() - last_publish >= publish_every:
                        self.publish(metrics)
                        last_publish = time.monotonic()
                    if any_rank(self._stop, self.dist):
                        self._stop = True
                        break
            stop_workers(it)  # before saving: a worker's exit must not interrupt the export
            if self._stop:  # no further validation: stop quickly, with what the run has
                self.save()
                if self.main:
                    info(f"saved {self.run_dir / 'last.pth'} at step {self.step}: resuming continues from it")
                raise TrainingStopped(self._exported(metrics, baselines), self._signum)
            if self.main:
                if self.step < self.iters:
                    info(f"time budget of {self.budget_s / 60:g} min used up at step {self.step}")
                metrics = self._validate_and_keep_best(baselines)
            self.save()
            return self._exported(metrics, baselines)
        finally:
            stop_workers(it)
            for sig, h in handlers.items():
                signal.signal(sig, h)
            self.logger.close()
            torch.use_deterministic_algorithms(self._prev_det)

    def _exported(self, metrics: dict, baselines: dict) -> TrainResult:
        """Export the last EMA weights and the best validated ones (when configured; rank 0) and
        return the run's :class:`TrainResult` (all ranks wait for the export)."""
        export = best_export = None
        if self.main and self.cfg["val"]["select"] == "worst_group" and self.best.get("score", 0.0) < 0:
            ref = "starting weights" if self.start_val else "input"
            warn(
                f"no validated step gained on every val group over the {ref}: the best (step {self.best['step']})"
                f" lost {-self.best['score']:.3f} dB on its worst group"
            )
        if self.main and (self.cfg["export"] or self.cfg["publish"]["dir"]):
            export, best_export = self.publish(metrics), self.export_best()
        barrier(self.dist)
        return TrainResult(self.run_dir, self.step, metrics, dict(self.best), baselines, export, best_export, self.main)

    def _desc(self, mean: dict | None) -> str:
        name = self.cfg["name"] or "train"
        if not mean:
            return name
        terms = " ".join(f"{k} {v:.4f}" for k, v in mean.items() if k not in ("lr", "total"))
        return f"{name} loss {mean['total']:.4f} ({terms})"

    def _baselines(self) -> dict:
        from kdsharp.train.builders import score

        groups = self.val_groups
        out = {"input": score(lambda x: x, self.val_items, self.device, self._autocast, groups)}
        if self.step == 0 and self.cfg["model"]["init"]:  # continued weights: the reference of val.select
            self.start_val = self.validate()
        if self.start_val:
            out["start"] = dict(self.start_val)
        if self.teacher is not None:
            out["teacher"] = score(self.teacher, self.val_items, self.device, self._autocast, groups)
        msg = ", ".join(f"{k} {v['psnr']:.2f} dB / {v['ssim']:.4f}" for k, v in out.items())
        info(f"val set: {len(self.val_items)} images; {msg}")
        self.logger.baselines(out)
        return out

    def export(self, metrics: dict) -> Path:
        """Save the EMA (or raw) weights as fp16 safetensors ``run_dir/<name>.safetensors``."""
        model = self.ema.module if self.ema else self.model
        path = self.run_dir / f"{self.cfg['name'] or 'model'}.safetensors"
        return self._save_weights(path, strip_module_prefix(model.state_dict()), self.step, metrics)

    def export_best(self) -> Path | None:
        """Save the best validated EMA (or raw) weights (``best.pth``) as ``run_dir/<name>_best.safetensors``;
        None when the final weights are the best (or nothing was validated)."""
        best = self.run_dir / "best.pth"
        if not self.best or int(self.best.get("step", -1)) == self.step or not best.is_file():
            return None
        ckpt = load_checkpoint(best)
        path = self.run_dir / f"{self.cfg['name'] or 'model'}_best.safetensors"
        params = strip_module_prefix(ckpt.get("params_ema") or ckpt["params"])
        step = int(ckpt["step"])
        rule = self.cfg["val"]["select"]
        meta = {"selected": f"best.pth: the run's best validation step by val.select={rule} (EMA weights)"}
        return self._save_weights(path, params, step, dict(ckpt.get("best") or {}), step / max(1, self.step), meta)

    def _save_weights(
        self, path: Path, params: dict, step: int, metrics: dict, share: float = 1.0, extra: dict | None = None
    ) -> Path:
        """fp16 safetensors with the run's metadata (and ``extra``); ``share``: the part of the run's time they took."""
        from kdsharp.io.weights import save_weights

        meta = {
            "arch": self.arch["name"],
            "arch_kwargs": self.arch["kwargs"],
            **self.arch.get("test_time", {}),
            "iters": str(step),
            "val_psnr": f"{metrics.get('psnr', float('nan')):.4f}",
            "val_ssim": f"{metrics.get('ssim', float('nan')):.4f}",
            "config_hash": config_hash(self.cfg),
            "train_seconds": f"{(time.monotonic() - self._t0) * share:.0f}",
            "device": _device_name(self.device),
            "teacher": Path(str(self.teacher_spec)).name if self.teacher_spec else "",
            **(extra or {}),
        }
        save_weights(path, params, meta, half=True)
        info(f"exported {path}")
        return path

    def close(self) -> None:
        cleanup(self.dist)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def train(cfg: dict, resume: str | Path | None = None, teardown: bool = True) -> TrainResult:
    """Build a :class:`Trainer` for ``cfg`` and run it; tears down DDP afterwards (``teardown``)."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    trainer = None
    run_dir = run_folder(cfg)
    new_run = not run_dir.exists()
    try:
        try:
            trainer = Trainer(cfg, resume)
        except BaseException:  # a bad setting found while building the run: leave no empty run folder
            if new_run and run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {"config.yaml"}:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return trainer.fit()
    finally:
        torch.use_deterministic_algorithms(prev_det)
        if trainer is not None and teardown:
            trainer.close()
