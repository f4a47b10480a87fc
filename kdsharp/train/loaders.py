"""Training data plumbing: a step-indexed batch sampler, the teacher-output cache, the val set.

Resumable data order: batch ``step`` on ``rank`` holds global sample positions
``p = (step * world + rank) * batch + j``; position ``p`` is item ``i = perm_e[p % n]`` of the
epoch ``e = p // n`` permutation drawn from ``(seed, e)``, and the item's random draws (crop,
degradation, flips) come from ``(seed, e, i)`` (``TrainDataset.set_epoch``). Nothing depends on
iterator state or on the worker that loads an item, so ``--resume`` replays exactly.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from kdsharp.console import info, progress
from kdsharp.devices import available_cores
from kdsharp.errors import InputError
from kdsharp.io.atomic import atomic_path
from kdsharp.ops.geometry import dihedral


class MapDataset(Protocol):
    """What these helpers need of a dataset: a length and items by index."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict: ...


class StepBatchSampler(Sampler):
    """Yields, for steps ``start..total-1``, this rank's list of ``(index, epoch)`` keys."""

    def __init__(self, n: int, batch: int, seed: int, start: int, total: int, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed = int(n), int(batch), int(seed)
        self.start, self.total, self.rank, self.world = int(start), int(total), int(rank), int(world)
        self._perm_epoch, self._perm = -1, np.arange(self.n)

    def _key(self, p: int) -> tuple[int, int]:
        epoch = p // self.n
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[p % self.n]), int(epoch)

    def batch_keys(self, step: int) -> list[tuple[int, int]]:
        base = (step * self.world + self.rank) * self.batch
        return [self._key(base + j) for j in range(self.batch)]

    def __iter__(self):
        for step in range(self.start, self.total):
            yield self.batch_keys(step)

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def augment_like(tensors: list[torch.Tensor], code: int) -> list[torch.Tensor]:
    """Apply the same flip/rot90 (``code`` in 0..7, :func:`kdsharp.ops.geometry.dihedral`) to each (C,H,W) tensor."""
    return [dihedral(t, code) for t in tensors]


class SeededItems(Dataset):
    """Wraps a dataset: key ``(index, epoch)`` -> ``ds.set_epoch(epoch); ds[index]``.

    The global RNGs are also seeded from ``(seed, epoch, index)`` during the call (and restored),
    so even a dataset drawing from them is reproducible and independent of the loading worker.
    """

    def __init__(self, ds: MapDataset, seed: int = 0):
        self.ds, self.seed = ds, int(seed)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        index, epoch = key
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            seed_everything(int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]))
            if hasattr(self.ds, "set_epoch"):
                self.ds.set_epoch(epoch)
            item = self.ds[index]
        finally:  # leave the caller's global RNG streams untouched
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])
        return {k: v for k, v in item.items() if isinstance(v, torch.Tensor)}


class CachedTriples(Dataset):
    """The fixed teacher-cache set: tensors (N,3,c,c) ``lq``, ``gt``, ``teacher_out``.

    Key ``(index, epoch)``: the same random flip/rot90 (drawn from ``(seed, epoch, index)``) is
    applied to all three.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], augment: bool = True, seed: int = 0):
        self.t = tensors
        self.augment, self.seed = augment, int(seed)

    def __len__(self) -> int:
        return int(self.t["lq"].shape[0])

    def __getitem__(self, key):
        index, epoch = key
        names = [k for k in ("lq", "gt", "teacher_out") if k in self.t]
        items = [self.t[k][index].float() for k in names]
        if self.augment:
            items = augment_like(items, int(np.random.default_rng([self.seed, epoch, index]).integers(8)))
        return dict(zip(names, items, strict=True))


def _worker_init(_worker_id: int) -> None:
    # Ctrl-C and SIGTERM (``kill``, ``pkill -f``, a service manager stopping the whole group) are the
    # main process's: it saves a checkpoint and stops the workers itself (they exit on their own if
    # it dies). A worker killed by them made the stop fail as it exported the weights.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # many workers x OpenCV's own thread pool would oversubscribe the cores


def start_workers(loader: DataLoader):
    """``iter(loader)``, forking its worker processes with no OpenCV thread pool running.

    A worker forked while the parent's OpenCV pool has threads inherits the pool's locks but not its
    threads: its ``cv2.setNumThreads`` then blocks forever (seen with the photo corpus, whose loading
    resizes with OpenCV's threads). Setting one thread joins the pool's threads; the parent's count
    is restored after the fork.
    """
    if not loader.num_workers:
        return iter(loader)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return iter(loader)
    finally:
        cv2.setNumThreads(threads)


def stop_workers(it) -> None:
    """Shut the worker processes of a loader iterator (:func:`start_workers`) down now, joined, so that
    their exit can no longer raise in this process (torch's SIGCHLD check) while it saves and exports;
    a no-op without workers or when already done."""
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def loader_workers(asked: int) -> int:
    """``data.workers``, at most the usable cores (a GPU config's 12 workers on a 2-core machine would
    only contend; items are keyed by index, so the batches are the same), said once when capped."""
    cores = available_cores()
    if asked > cores:
        info(f"data.workers={asked} is more than the {cores} cores this process may use: {cores} loader workers")
        return cores
    return asked


def make_loader(ds: Dataset, sampler: StepBatchSampler, workers: int, pin: bool) -> DataLoader:
    """A DataLoader over ``ds`` driven by ``sampler`` (items are keyed, so workers do not matter).

    It gets its own generator so that creating it does not draw from the global torch RNG.
    """
    return DataLoader(
        ds,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(sampler.seed),
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


# ----------------------------------------------------------------------------- teacher cache
def teacher_stamp(teacher_spec: str) -> str:
    """``sha256:HASH:size`` of the teacher's weights file (a registered name: its shipped weights), or ''.

    The file's content, not its path or time: a copied or touched teacher is the same teacher, and a bank
    it labelled stays usable; other weights at the same path are another teacher."""
    stamp = ""
    p = Path(str(teacher_spec))
    if not p.is_file():  # a registered name: stamp its shipped weights file
        try:
            from kdsharp.registry import weights_path

            p = weights_path(str(teacher_spec)) or p
        except Exception:  # noqa: BLE001 - unknown names fail later with a clear error
            pass
    if p.is_file():
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        stamp = f"sha256:{digest.hexdigest()[:16]}:{p.stat().st_size}"
    return stamp


def cache_key(teacher_spec: str, data_cfg: dict, size: int, seed: int, stamp: str | None = None) -> str:
    """Hash of what the cache depends on (teacher identity + ``stamp``, data, size, seed); ``stamp``: the
    teacher's :func:`teacher_stamp` when the caller has it (hashing the weights once per run)."""
    blob = json.dumps(
        {
            "teacher": str(teacher_spec),
            "stamp": teacher_stamp(teacher_spec) if stamp is None else stamp,
            "data": data_cfg,
            "size": size,
            "seed": seed,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def labelling_autocast(device: torch.device, bf16, run_autocast=None, run_precision: str = "fp32"):
    """The autocast for labelling a bank: the run's own on a GPU (``run_autocast``, its amp named
    ``run_precision``); bf16 on a CPU with bfloat16 instructions when ``bf16`` is 'auto'; else None
    (float32). Returns (factory, precision name)."""
    if device.type == "cuda":
        return run_autocast, run_precision
    from kdsharp.devices import cpu_has_native_bf16

    if bf16 == "auto" and device.type == "cpu" and cpu_has_native_bf16():
        return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), "bf16"
    return None, "fp32"


@torch.no_grad()
def build_teacher_cache(
    teacher: nn.Module,
    ds: Dataset,
    size: int,
    batch: int,
    device: torch.device,
    path: Path,
    key: str,
    autocast=None,
    teacher_id: str = "",
) -> dict[str, torch.Tensor]:
    """Run the frozen ``teacher`` once on items ``0..size-1`` of ``ds`` and save (lq, gt, out).

    Stored as fp16 safetensors at ``path`` (atomically) with the ``key`` and ``teacher_id``
    (:func:`teacher_stamp`) in its metadata; reused by :func:`load_teacher_cache` when the key
    matches, and by other runs as an extra bank (:func:`load_extra_banks`).
    """
    from safetensors.torch import save_file

    lqs, gts, outs = [], [], []
    with progress("crops") as bar:
        task = bar.add_task("teacher cache", total=size)
        for start in range(0, size, batch):
            items = [ds[i] for i in range(start, min(size, start + batch))]
            lq = torch.stack([it["lq"] for it in items])
            gt = torch.stack([it["gt"] for it in items])
            with autocast() if autocast else _nullctx():
                out = teacher(lq.to(device))
            lqs.append(lq.half())
            gts.append(gt.half())
            outs.append(out.float().clamp(0, 1).cpu().half())
            bar.advance(task, len(items))
    tensors = {k: torch.cat(v).contiguous() for k, v in (("lq", lqs), ("gt", gts), ("teacher_out", outs))}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"key": key, "count": str(size), "teacher": teacher_id})
    info(f"teacher cache: {size} crops -> {path}")
    return tensors


def load_teacher_cache(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The cached tensors at ``path`` if made with the same ``key``; None if there is no file yet.

    A bank made with other settings is refused, not replaced: it may have taken hours to label, and
    other runs may list it in ``teacher_cache.extra``.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if path.is_dir():  # checked before the teacher labels the crops, not when saving them
        raise InputError(path, "teacher_cache.path is a folder", "give it a file path, e.g. bank.safetensors")
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path)) if meta.get("key") == key else None
    except Exception as e:  # a corrupt cache is reported (re-raised) and rebuilt
        raise InputError(
            path,
            f"teacher cache is unreadable ({type(e).__name__})",
            "delete it to rebuild, or set teacher_cache.path elsewhere",
        ) from e
    if tensors is None:
        raise InputError(
            path,
            "holds a teacher bank made with other settings (teacher, data.sources/degradation/crop, size or seed)",
            "set teacher_cache.path to a new file (null: one file per settings), or delete it to rebuild it",
        )
    return tensors


def load_extra_banks(paths: list, like: dict[str, torch.Tensor], teacher_id: str) -> dict[str, torch.Tensor]:
    """``like`` (a run's own teacher cache) with the crops of the bank files ``paths`` appended.

    The extra banks are other runs' teacher caches (other data, degradations or sizes) labelled
    by the same teacher: a bank whose metadata names another teacher, holds other tensors or
    another crop size is refused. Returns the concatenated tensors (the same keys as ``like``).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    parts = [like]
    for p in map(Path, paths):
        if not p.is_file():
            raise InputError(p, "extra teacher bank not found", "give the path of another run's teacher cache")
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as e:  # any unreadable file: reported as not a bank
            raise InputError(
                p, f"is not a teacher bank ({type(e).__name__})", "give another run's teacher cache"
            ) from e
        if meta.get("teacher") and teacher_id and meta["teacher"] != teacher_id:
            raise InputError(
                p,
                f"was labelled by another teacher ({meta['teacher']})",
                "use banks made with this run's teacher, or rebuild them",
            )
        bank = load_file(str(p))
        if not set(like) <= set(bank):
            raise InputError(
                p,
                f"is not a teacher bank (no {', '.join(sorted(set(like) - set(bank)))} tensors)",
                "give another run's teacher cache (<out_dir>/cache/teacher_*.safetensors)",
            )
        if any(bank[k].shape[1:] != like[k].shape[1:] for k in like):
            got, want = tuple(bank["gt"].shape[1:]), tuple(like["gt"].shape[1:])
            raise InputError(p, f"holds crops of {got}, not the run's {want}", "use banks of the same crop size")
        parts.append({k: bank[k] for k in like})
    if len(parts) == 1:
        return like
    return {k: torch.cat([part[k] for part in parts]) for k in like}


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ----------------------------------------------------------------------------- validation set
def collect_val_items(ds: MapDataset, max_images: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``max_images`` (lq, gt) pairs of ``ds`` as (1,3,H,W) tensors."""
    out = []
    for i in range(min(len(ds), max_images)):
        item = ds[i]
        out.append((item["lq"].unsqueeze(0).float(), item["gt"].unsqueeze(0).float()))
    return out
