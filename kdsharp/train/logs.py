"""Run logs: CSV files (rewritten atomically) and TensorBoard scalars, rank 0 only.

``train_log.csv`` has one row per ``log_every`` steps (step, lr, loss terms averaged over the
window), ``val_log.csv`` one row per validation (step, psnr, ssim), ``baselines.json`` the input
(and teacher) scores on the same val set. On resume, rows after the resumed step are dropped.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from kdsharp.console import warn
from kdsharp.io.atomic import atomic_path

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: float(v) if v not in ("", None) else "" for k, v in row.items()} for row in csv.DictReader(f)]


class RunLogger:
    """Collects train/val scalars of one run; a no-op when ``enabled`` is False (ranks > 0)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.train_rows: list[dict] = []
        self.val_rows: list[dict] = []
        self._tb: SummaryWriter | None = None
        self._tb_failed = False
        self._pending = 0
        self.flush_every = 20  # rewrite train_log.csv every 20 rows (and on val/flush/close)

    def _writer(self):
        if self._tb is None and not self._tb_failed:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tb"))
            except Exception as e:  # noqa: BLE001 - TensorBoard is optional for a run
                self._tb_failed = True
                warn(f"TensorBoard logging disabled ({type(e).__name__}: {e})")
        return self._tb

    def restore(self, step: int) -> None:
        """Keep the existing CSV rows up to ``step`` (resume)."""
        if not self.enabled:
            return
        self.train_rows = [r for r in _read_csv(self.run_dir / "train_log.csv") if r.get("step", 0) <= step]
        self.val_rows = [r for r in _read_csv(self.run_dir / "val_log.csv") if r.get("step", 0) <= step]
        for rows in (self.train_rows, self.val_rows):
            for r in rows:
                r["step"] = int(r["step"])

    def train(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.train_rows.append({"step": step, **scalars})
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()
        tb = self._writer()
        if tb is not None:
            for k, v in scalars.items():
                tb.add_scalar(f"train/{k}", v, step)

    def val(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.val_rows.append({"step": step, **metrics})
        _write_csv(self.run_dir / "val_log.csv", self.val_rows)
        self.flush()
        tb = self._writer()
        if tb is not None:
            for k, v in metrics.items():
                tb.add_scalar(f"val/{k}", v, step)
            tb.flush()

    def baselines(self, scores: dict[str, dict]) -> None:
        if not self.enabled:
            return
        with atomic_path(self.run_dir / "baselines.json") as tmp:
            tmp.write_text(json.dumps(scores, indent=2), encoding="utf-8")

    def flush(self) -> None:
        """Write ``train_log.csv`` now (atomically)."""
        if self.enabled and self._pending:
            _write_csv(self.run_dir / "train_log.csv", self.train_rows)
            self._pending = 0

    def close(self) -> None:
        self.flush()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
