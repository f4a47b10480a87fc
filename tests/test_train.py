"""Trainer: config parsing, exact resume, Ctrl-C checkpoint, distillation gradients, teacher cache,
bad checkpoints, CLI, ablation and a 2-process DDP (gloo) run. Tiny models, crops and budgets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from kdsharp.errors import ConfigError, InputError
from kdsharp.train import load_config, parse_override
from kdsharp.train.checkpoint import load_checkpoint
from kdsharp.train.config import apply_overrides
from kdsharp.train.loaders import StepBatchSampler

TEACHER = {
    "name": "resunet_teacher",
    "kwargs": {"channels": [8, 16], "enc_blocks": [1, 1], "dec_blocks": [1], "stem": 1},
}
STUDENT = {"name": "unet", "kwargs": {"channels": [8, 16], "stem": 2}}  # shares s2 with TEACHER


def tiny_config(tmp_path: Path, **extra) -> dict:
    cfg = {
        "name": "tiny",
        "out_dir": str(tmp_path / "runs"),
        "seed": 3,
        "threads": 1,
        "model": TEACHER,
        "data": {
            "sources": [{"type": "synthetic", "count": 4, "size": 48, "seed": 0}],
            "degradation": "defocus",
            "crop": 32,
            "batch": 2,
            "workers": 0,
            "length": 16,
        },
        "val": {
            "sources": [{"type": "synthetic", "count": 2, "size": 40, "seed": 9}],
            "count": 2,
            "size": 32,
            "every": 0,
            "max_images": 2,
        },
        "loss": {"pixel": {"type": "charbonnier", "weight": 1.0}, "edge": {"type": "sobel", "weight": 0.1}},
        "optim": {"lr": 1e-3},
        "schedule": {"iters": 6, "warmup": 2},
        "ema": 0.9,
        "log_every": 2,
        "save_every": 0,
    }
    for k, v in extra.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    path = tmp_path / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def params_of(path: Path) -> dict:
    return load_checkpoint(path)["params"]


# ----------------------------------------------------------------------------- config
def test_parse_override_types():
    assert parse_override("optim.lr=1e-4") == (["optim", "lr"], 1e-4)
    assert parse_override("amp=off") == (["amp"], False)  # YAML 1.1: off is false (amp accepts it)
    assert parse_override("data.batch=4") == (["data", "batch"], 4)
    assert parse_override("deterministic=false") == (["deterministic"], False)
    assert parse_override("data.sources=[{type: samples}]") == (["data", "sources"], [{"type": "samples"}])
    assert parse_override("teacher=runs/t/last.pth") == (["teacher"], "runs/t/last.pth")
    with pytest.raises(ConfigError):
        parse_override("optim.lr")
    with pytest.raises(ConfigError):
        parse_override("optim..lr=1")


def test_config_unknown_keys_and_overrides(tmp_path):
    cfg = tiny_config(tmp_path)
    assert cfg["name"] == "tiny" and cfg["model"]["name"] == "resunet_teacher"
    assert cfg["optim"]["betas"] == [0.9, 0.99]  # default kept under a partial section
    out = apply_overrides(cfg, ["optim.lr=5e-4", "model.kwargs.stem=2", "loss.pixel.weight=0.5", "val.every=3"])
    assert out["optim"]["lr"] == 5e-4 and out["model"]["kwargs"]["stem"] == 2
    assert out["loss"]["pixel"]["weight"] == 0.5 and out["val"]["every"] == 3
    assert cfg["optim"]["lr"] == 1e-3  # input untouched
    with pytest.raises(ConfigError, match="optim.lrr"):
        apply_overrides(cfg, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="optimizer"):
        apply_overrides(cfg, ["optimizer.lr=1"])
    with pytest.raises(ConfigError, match="section"):
        apply_overrides(cfg, ["optim=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  batchsize: 4\n")
    with pytest.raises(ConfigError, match="data.batchsize"):
        load_config(bad)
    with pytest.raises(ConfigError, match="schedule.iters"):
        load_config(None, ["schedule.iters=0"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.betas=0.9", "optim.betas"),
        ("optim.betas=[0.9, 1.5]", "optim.betas"),
        ("optim.weight_decay=abc", "optim.weight_decay"),
        ("optim.eps=0", "optim.eps"),
        ("grad_clip=-1", "grad_clip"),
        ("threads=-2", "threads"),
        ("seed=abc", "seed"),
        ("seed=-1", "seed"),
        ("schedule.min_lr_ratio=abc", "schedule.min_lr_ratio"),
        ("schedule.max_minutes=abc", "schedule.max_minutes"),
        ("val.count=0", "val.count"),
        ("val.size=4", "val.size"),
        ("val.max_images=abc", "val.max_images"),
        ("data.length=abc", "data.length"),
        ("publish.every_s=abc", "publish.every_s"),
        ("deterministic=maybe", "deterministic"),
        ("data.batch=true", "data.batch"),
        ("name=..", "name"),  # runs/.. is the working folder itself
    ],
)
def test_bad_values_are_config_errors_naming_the_key(tmp_path, override, key):
    """A wrong type or range is caught when the config loads (not a TypeError mid-run, nor a silent
    negative grad_clip that flips the gradients); the message quotes the value given, as key=value."""
    tiny_config(tmp_path)
    value = parse_override(override)[1]
    with pytest.raises(ConfigError, match=re.escape(f"{key}={value!r} must be")):
        load_config(tmp_path / "tiny.yaml", [override])


def test_batch_sampler_is_a_function_of_step():
    a = StepBatchSampler(10, 4, seed=1, start=0, total=8)
    b = StepBatchSampler(10, 4, seed=1, start=5, total=8)
    assert list(a)[5:] == list(b)
    keys = [k for batch in StepBatchSampler(10, 5, seed=1, start=0, total=2) for k in batch]
    assert sorted(i for i, e in keys) == list(range(10)) and {e for _, e in keys} == {0}  # one epoch
    r0 = StepBatchSampler(10, 2, seed=1, start=0, total=3, rank=0, world=2)
    r1 = StepBatchSampler(10, 2, seed=1, start=0, total=3, rank=1, world=2)
    assert not set(map(tuple, list(r0)[0])) & set(map(tuple, list(r1)[0]))  # ranks see different samples


# ----------------------------------------------------------------------------- training
def test_teacher_run_ctrl_c_and_exact_resume(tmp_path, monkeypatch):
    from kdsharp.train import Trainer, train

    ref = train(tiny_config(tmp_path, name="ref"))
    run = ref.run_dir
    for f in (
        "last.pth",
        "best.pth",
        "config.yaml",
        "train_log.csv",
        "val_log.csv",
        "baselines.json",
        "ref.safetensors",
    ):
        assert (run / f).is_file(), f
    assert ref.step == 6 and ref.val["psnr"] > 0 and "input" in ref.baselines

    original = Trainer._train_step

    def interrupting(self, batch):
        terms = original(self, batch)
        if self.step == 2:  # the 3rd step: as if Ctrl-C was pressed during it
            os.kill(os.getpid(), signal.SIGINT)
        return terms

    monkeypatch.setattr(Trainer, "_train_step", interrupting)
    cfg = tiny_config(tmp_path, name="cut")
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(cfg)
    ckpt = load_checkpoint(tmp_path / "runs" / "cut" / "last.pth")
    assert ckpt["step"] == 3 and set(ckpt) >= {"params", "params_ema", "optimizer", "scheduler", "rng", "config"}
    reached = stopped.value.result  # TrainingStopped: the weights are exported as at the end of a run
    assert reached.step == 3 and reached.export is not None and reached.export.is_file()
    from kdsharp.io.weights import load_state_dict_file

    assert load_state_dict_file(reached.export)[1]["iters"] == "3"
    monkeypatch.setattr(Trainer, "_train_step", original)
    with pytest.raises(ConfigError, match="resume=auto"):
        train(cfg)  # the folder already holds a run
    res = train(cfg, resume="auto")
    assert res.step == 6
    a, b = params_of(run / "last.pth"), params_of(res.run_dir / "last.pth")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    ea, eb = load_checkpoint(run / "last.pth")["params_ema"], load_checkpoint(res.run_dir / "last.pth")["params_ema"]
    assert all(torch.allclose(ea[k], eb[k], atol=1e-6, rtol=0) for k in ea)


def _children(pid: int) -> list[int]:
    """Pids of the live child processes of ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the loader workers")
def test_sigterm_to_the_run_and_its_loader_workers_stops_cleanly(tmp_path):
    """``pkill -f``, or a service manager stopping the group, sends SIGTERM to the training process
    AND its loader workers: the run still saves last.pth and exports the last and the best
    validated weights (a worker killed by it failed the run, mid-step or while exporting)."""
    cfg = tiny_config(
        tmp_path,
        name="group",
        data={"workers": 1, "length": 100000},
        val={"every": 2},
        schedule={"iters": 100000, "warmup": 2},
    )
    run = Path(cfg["out_dir"]) / "group"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdsharp", "train", "teacher", "--config", str(tmp_path / "group.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # two validations: best.pth is behind
            log = run / "val_log.csv"
            if log.is_file() and len(log.read_text().splitlines()) >= 3 and _children(proc.pid):
                break
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert proc.poll() is None and workers, proc.stderr.read() if proc.poll() is not None else "no worker"
        for pid in [*workers, proc.pid]:
            os.kill(pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "killed by signal" not in err and "FAILED" not in err, err[-2000:]
    assert proc.returncode == 128 + signal.SIGTERM and "terminated (SIGTERM)" in err, (proc.returncode, err[-2000:])
    step = load_checkpoint(run / "last.pth")["step"]
    assert step >= 4 and (run / "group.safetensors").is_file()
    if load_checkpoint(run / "best.pth")["step"] != step:  # the best step is exported beside the last one
        assert (run / "group_best.safetensors").is_file()


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    from kdsharp.train import train

    cfg = tiny_config(tmp_path, name="bad", schedule={"iters": 1, "warmup": 0}, export=False)
    run = tmp_path / "runs" / "bad"
    run.mkdir(parents=True)
    (run / "last.pth").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="last.pth"):
        train(cfg, resume="auto")
    (run / "last.pth").unlink()
    train(cfg)
    other = apply_overrides(cfg, ["model.kwargs.channels=[8, 24]"])
    with pytest.raises(InputError, match="shape"):
        train(other, resume=str(run / "last.pth"))
    with pytest.raises(InputError, match="not found"):
        train(cfg, resume=str(run / "nope.pth"))


def _teacher_checkpoint(tmp_path: Path) -> Path:
    from kdsharp.train import train

    cfg = tiny_config(tmp_path, name="teach", schedule={"iters": 2, "warmup": 0}, export=False)
    return train(cfg).run_dir / "last.pth"


def test_student_gradients_reach_student_never_teacher(tmp_path):
    from kdsharp.train import Trainer
    from kdsharp.train.loaders import StepBatchSampler, make_loader

    teacher_path = _teacher_checkpoint(tmp_path)
    cfg = tiny_config(
        tmp_path,
        name="stud",
        model=STUDENT,
        teacher=str(teacher_path),
        loss={"pixel": {"weight": 1.0}, "distill_output": {"weight": 0.5}, "distill_feature": {"weight": 0.1}},
    )
    tr = Trainer(cfg)
    try:
        assert not tr.teacher.training and not any(p.requires_grad for p in tr.teacher.parameters())
        teacher_before = {k: v.clone() for k, v in tr.teacher.state_dict().items()}
        batch = next(iter(make_loader(tr.train_ds, StepBatchSampler(len(tr.train_ds), 2, 0, 0, 1), 0, False)))
        terms = tr._train_step(batch)
        assert terms["distill_output"] > 0 and terms["distill_feature"] > 0 and terms["pixel"] > 0
        assert all(p.grad is None for p in tr.teacher.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.model.parameters())
        assert all(p.grad is not None for p in tr.adapters.parameters())
        assert all(torch.equal(v, tr.teacher.state_dict()[k]) for k, v in teacher_before.items())
        assert "adapters" in tr.state_dict() and tr.state_dict()["adapters"]
    finally:
        tr.close()


def test_student_with_teacher_cache(tmp_path):
    from kdsharp.train import train

    teacher_path = _teacher_checkpoint(tmp_path)
    cache = tmp_path / "cache.safetensors"
    cfg = tiny_config(
        tmp_path,
        name="cached",
        model=STUDENT,
        teacher=str(teacher_path),
        teacher_cache={"enabled": True, "size": 6, "path": str(cache), "batch": 4},
        loss={"pixel": {"weight": 1.0}, "distill_output": {"weight": 0.5}},
    )
    res = train(cfg)
    assert cache.is_file() and res.step == 6 and "teacher" in res.baselines
    from safetensors.torch import load_file

    t = load_file(str(cache))
    assert t["lq"].shape == t["gt"].shape == t["teacher_out"].shape == (6, 3, 32, 32)
    stamp = cache.stat().st_mtime_ns
    train(apply_overrides(cfg, ["name=cached2"]))
    assert cache.stat().st_mtime_ns == stamp  # reused, not rebuilt
    # another run's bank appended (teacher_cache.extra): a new bank of 4 other crops + this one
    other = tmp_path / "other.safetensors"
    res = train(
        apply_overrides(
            cfg,
            [
                "name=cached4",
                "seed=3",
                "teacher_cache.size=4",
                f"teacher_cache.path={other}",
                f"teacher_cache.extra=[{cache}]",
            ],
        )
    )
    assert res.step == 6 and load_file(str(other))["lq"].shape[0] == 4
    with pytest.raises(ConfigError, match="teacher_cache"):
        train(apply_overrides(cfg, ["name=cached3", "loss.distill_feature={weight: 0.1}"]))


def test_a_bad_val_source_fails_before_the_teacher_labels_the_cache(tmp_path, monkeypatch):
    """The val set is read before the teacher cache is built (minutes to hours of labelling)."""
    import kdsharp.train.trainer as trainer

    monkeypatch.setattr(trainer, "build_teacher_cache", lambda *a, **k: pytest.fail("labelled crops first"))
    cfg = tiny_config(
        tmp_path,
        name="badval",
        model=STUDENT,
        teacher="teacher",
        teacher_cache={"enabled": True, "size": 4, "path": str(tmp_path / "bank.safetensors")},
        loss={"pixel": {"weight": 1.0}, "distill_output": {"weight": 0.5}},
        val={"sources": [{"type": "folder", "path": str(tmp_path / "missing")}]},
    )
    with pytest.raises(InputError, match="missing"):
        trainer.train(cfg)


def test_extra_banks_are_appended_and_checked(tmp_path):
    """Extra teacher banks join the run's own; another teacher's bank or another crop size is refused."""
    from safetensors.torch import save_file

    from kdsharp.errors import InputError
    from kdsharp.train.loaders import load_extra_banks

    own = {k: torch.full((3, 3, 8, 8), float(i)) for i, k in enumerate(("lq", "gt", "teacher_out"))}
    extra = tmp_path / "extra.safetensors"
    save_file({k: v[:2] + 10 for k, v in own.items()}, str(extra), metadata={"teacher": "T:1", "key": "x"})
    joined = load_extra_banks([extra], own, "T:1")
    assert {k: v.shape[0] for k, v in joined.items()} == {"lq": 5, "gt": 5, "teacher_out": 5}
    assert torch.equal(joined["gt"][:3], own["gt"]) and torch.equal(joined["gt"][3:], own["gt"][:2] + 10)
    assert load_extra_banks([], own, "T:1") is own
    with pytest.raises(InputError, match="another teacher"):
        load_extra_banks([extra], own, "T:2")
    small = tmp_path / "small.safetensors"
    save_file({k: torch.zeros(2, 3, 4, 4) for k in own}, str(small))
    with pytest.raises(InputError, match="crop size"):
        load_extra_banks([small], own, "T:1")
    with pytest.raises(InputError, match="not found"):
        load_extra_banks([tmp_path / "missing.safetensors"], own, "T:1")
    # model weights or a checkpoint given as a bank: a short line, not every tensor's shape
    weights = tmp_path / "weights.safetensors"
    save_file({f"layer{i}.weight": torch.zeros(4, 3, 3, 3) for i in range(50)}, str(weights))
    with pytest.raises(InputError, match="not a teacher bank") as bad:
        load_extra_banks([weights], own, "T:1")
    assert len(str(bad.value)) < 300
    pth = tmp_path / "last.pth"
    torch.save({"params": {}}, pth)
    with pytest.raises(InputError, match="not a teacher bank"):
        load_extra_banks([pth], own, "T:1")


def test_teacher_cache_path_that_is_a_folder_is_refused_before_labelling(tmp_path):
    from kdsharp.train.loaders import load_teacher_cache

    with pytest.raises(InputError, match="teacher_cache.path is a folder"):
        load_teacher_cache(tmp_path, "key")


def test_a_bank_made_with_other_settings_is_refused_not_replaced(tmp_path):
    """teacher_cache.path holding a bank of other settings (a changed crop, teacher, data...) was
    silently relabelled and overwritten: hours of labelling lost, other runs' extra banks changed."""
    from safetensors.torch import save_file

    from kdsharp.train.loaders import load_teacher_cache

    bank = tmp_path / "bank.safetensors"
    save_file({"lq": torch.zeros(2, 3, 8, 8)}, str(bank), metadata={"key": "old"})
    before = bank.read_bytes()
    assert load_teacher_cache(bank, "old")["lq"].shape == (2, 3, 8, 8)
    with pytest.raises(InputError, match="made with other settings.*set teacher_cache.path to a new file"):
        load_teacher_cache(bank, "new")
    assert bank.read_bytes() == before
    assert load_teacher_cache(tmp_path / "none.safetensors", "new") is None  # no bank yet: built


def test_teacher_stamp_follows_the_weights_not_the_file(tmp_path):
    """A bank's teacher identity is its weights' content: a copy or a touched file is the same teacher."""
    import os
    import shutil

    from kdsharp.train.loaders import teacher_stamp

    a = tmp_path / "a.safetensors"
    a.write_bytes(b"weights-1" * 1000)
    b = tmp_path / "sub" / "b.safetensors"
    b.parent.mkdir()
    shutil.copyfile(a, b)
    stamp = teacher_stamp(str(a))
    assert stamp.startswith("sha256:") and stamp == teacher_stamp(str(b))
    os.utime(a, (1, 1))
    assert teacher_stamp(str(a)) == stamp
    a.write_bytes(b"weights-2" * 1000)  # same size, other weights
    assert teacher_stamp(str(a)) != stamp
    assert teacher_stamp("teacher").startswith("sha256:")  # a registered name: its shipped file
    assert teacher_stamp(str(tmp_path / "missing.safetensors")) == ""


def test_student_without_teacher_is_a_config_error(tmp_path):
    from kdsharp.train.entry import run_training

    cfg_path = tmp_path / "s.yaml"
    loss = {"pixel": {"weight": 1}, "distill_output": {"weight": 1}}
    cfg_path.write_text(yaml.safe_dump({"model": STUDENT, "loss": loss}))
    with pytest.raises(ConfigError, match="teacher"):
        run_training("student", cfg_path, [f"out_dir={tmp_path}"])


def test_cli_train_teacher_and_errors(tmp_path):
    from kdsharp.cli import main

    tiny_config(tmp_path, name="cli")
    cfg_path = tmp_path / "cli.yaml"
    assert main(["train", "teacher", "--config", str(cfg_path), "schedule.iters=2", "export=false"]) == 0
    assert (tmp_path / "runs" / "cli" / "last.pth").is_file()
    assert main(["train", "teacher", "--config", str(cfg_path), "optim.lrr=1"]) == 2
    assert main(["train", "teacher", "--config", str(cfg_path), "--resume", "schedule.iters=3", "export=false"]) == 0
    last = tmp_path / "runs" / "cli" / "last.pth"
    assert load_checkpoint(last)["step"] == 3
    # without --config the checkpoint's config is used
    assert main(["train", "teacher", "--resume", str(last), "schedule.iters=4", "export=false"]) == 0
    assert load_checkpoint(last)["step"] == 4
    # a bare --resume last, or before another option, also means auto
    assert main(["train", "teacher", "--config", str(cfg_path), "schedule.iters=5", "export=false", "--resume"]) == 0
    assert load_checkpoint(last)["step"] == 5
    assert main(["train", "teacher", "--resume", "--config", str(cfg_path), "schedule.iters=6", "export=false"]) == 0
    assert load_checkpoint(last)["step"] == 6
    assert main(["train", "student", "--config", str(cfg_path), "name=s"]) == 2  # no teacher


def test_cli_student_without_teacher_names_the_flag(tmp_path, capsys):
    """The config check's error keeps its setting names through the file prefix: --teacher, not teacher=."""
    from kdsharp.cli import main

    tiny_config(tmp_path, name="nt", model=STUDENT)
    path = tmp_path / "nt.yaml"
    path.write_text(path.read_text() + "teacher_cache: {enabled: true}\n")
    assert main(["train", "student", "--config", str(tmp_path / "nt.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nt.yaml" in err and "--teacher NAME|PATH" in err and "teacher=" not in err


def test_ablation_writes_table(tmp_path):
    from kdsharp.train import run_ablation

    teacher_path = _teacher_checkpoint(tmp_path)
    cfg = tiny_config(
        tmp_path,
        name="abl",
        model=STUDENT,
        teacher=str(teacher_path),
        export=False,
        schedule={"iters": 2, "warmup": 0},
        loss={"pixel": {"weight": 1.0}, "distill_output": {"weight": 0.5}},
    )
    out = run_ablation(cfg)
    md = out["paths"]["md"].read_text()
    assert "| unet | yes |" in md and "| unet | no |" in md and "input" in md
    for run in ("abl_kd", "abl_nokd"):
        assert (tmp_path / "runs" / run / "last.pth").is_file()
    nokd = load_checkpoint(tmp_path / "runs" / "abl_nokd" / "last.pth")["config"]
    assert nokd["loss"]["distill_output"]["weight"] == 0
    # one checkpoint path would resume both runs from it (the no-KD run from the KD weights, in its folder)
    kd_last = tmp_path / "runs" / "abl_kd" / "last.pth"
    before = kd_last.read_bytes()
    with pytest.raises(ConfigError, match="resume=auto"):
        run_ablation(apply_overrides(cfg, ["schedule.iters=3"]), resume=str(kd_last))
    assert kd_last.read_bytes() == before
    out = run_ablation(apply_overrides(cfg, ["schedule.iters=3"]), resume="auto")
    for run in ("abl_kd", "abl_nokd"):
        ckpt = load_checkpoint(tmp_path / "runs" / run / "last.pth")
        assert ckpt["step"] == 3 and ckpt["config"]["name"] == run


def test_ddp_two_processes_gloo(tmp_path):
    tiny_config(tmp_path, name="ddp", schedule={"iters": 3, "warmup": 0})
    env = {**os.environ, "KDSHARP_QUIET": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "kdsharp",
        "train",
        "teacher",
        "--config",
        str(tmp_path / "ddp.yaml"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "runs" / "ddp" / "last.pth")
    assert ckpt["step"] == 3 and not any(k.startswith("module.") for k in ckpt["params"])
    assert (tmp_path / "runs" / "ddp" / "ddp.safetensors").is_file()


def test_model_init_fine_tunes_from_trained_weights(tmp_path):
    """model.init starts a new run from a checkpoint (EMA weights) or a weights file; a mismatch
    is a ConfigError naming the file."""
    from kdsharp.registry import save_model
    from kdsharp.train import Trainer
    from kdsharp.train.builders import model_from_checkpoint

    ckpt = _teacher_checkpoint(tmp_path)
    trained = model_from_checkpoint(ckpt)
    weights = save_model(trained, tmp_path / "t.safetensors", half=False)
    for spec in (ckpt, weights):
        tr = Trainer(tiny_config(tmp_path, name=f"ft_{Path(spec).suffix[1:]}", model={**TEACHER, "init": str(spec)}))
        try:
            got, want = tr.model.state_dict(), trained.state_dict()
            assert all(torch.equal(got[k].float(), want[k].float()) for k in want)
            assert tr.step == 0  # a new run, not a resume
        finally:
            tr.close()
    with pytest.raises(ConfigError, match="t.safetensors") as bad:
        Trainer(tiny_config(tmp_path, name="ft_bad", model={**STUDENT, "init": str(weights)}))
    assert "resume" not in str(bad.value) and "same architecture" in str(bad.value)  # no advice for resuming


def test_model_init_grows_an_identity_start_branch():
    """model.init from a luma-only `fast` into `fast_ycc` (same model + a chroma branch whose tail
    starts at zero): the new branch keeps its initial values and the output is unchanged; tensors
    outside such a branch must still match."""
    from kdsharp.models import unwrap
    from kdsharp.registry import create_model, load_model
    from kdsharp.train.builders import init_weights

    grown = unwrap(create_model("fast_ycc")).eval()
    init_weights(grown, "fast")
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), unwrap(load_model("fast", deploy=False))(x), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="student"):
        init_weights(unwrap(create_model("fast_ycc")), "student")


def test_best_validated_weights_are_exported_beside_the_final_ones(tmp_path, monkeypatch):
    from kdsharp.io.weights import load_state_dict_file
    from kdsharp.train import Trainer, train

    scores = iter([30.0, 31.0, 29.0, 28.0])  # validation at steps 2, 4, 6 and the final one: best at 4

    def fake_validate(self):
        return {"psnr": next(scores), "ssim": 0.5}

    monkeypatch.setattr(Trainer, "validate", fake_validate)
    res = train(tiny_config(tmp_path, val={"every": 2}))
    assert res.best["step"] == 4 and res.step == 6
    assert res.export.name == "tiny.safetensors" and res.best_export.name == "tiny_best.safetensors"
    shipped, meta = load_state_dict_file(res.best_export)
    assert meta["iters"] == "4" and meta["val_psnr"] == "31.0000" and meta["selected"].startswith("best.pth")
    best = load_checkpoint(res.run_dir / "best.pth")["params_ema"]
    assert all(torch.allclose(best[k].half().float(), shipped[k].float()) for k in best)

    scores = iter([30.0, 31.0, 32.0, 33.0])  # the final weights are the best: no second file
    res = train(tiny_config(tmp_path, name="rising", val={"every": 2}))
    assert res.best_export is None and not (res.run_dir / "rising_best.safetensors").exists()


def test_selection_score_rules():
    from kdsharp.train.selection import selection_score

    ref = {"psnr": 30.0, "ssim": 0.8, "psnr_lowbw": 26.0, "psnr_h264": 31.0}
    ours = {"psnr": 30.3, "ssim": 0.8, "psnr_lowbw": 26.8, "psnr_h264": 30.9}
    assert selection_score(ours, ref, "psnr") == 30.3
    assert selection_score(ours, ref, "worst_group") == pytest.approx(-0.1)  # h264 lost: the mean hides it
    assert selection_score({"psnr": 30.5, "ssim": 0.8}, {"psnr": 30.0}, "worst_group") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="reference"):
        selection_score(ours, None, "worst_group")
    with pytest.raises(ValueError, match="worst_group"):
        selection_score(ours, ref, "mean")


def test_worst_group_selection_keeps_the_step_that_lost_no_preset(tmp_path, monkeypatch, capsys):
    """val.select=worst_group against the starting weights (model.init): the mean-PSNR rule would keep
    step 2 (+0.2 dB mean, -0.1 dB on h264); this rule keeps step 4 (+0.05 dB on its worst preset).
    The starting weights' validation survives a resume; an unknown rule is a config error."""
    from kdsharp.train import Trainer, train

    start = {"lowbw": 30.0, "h264": 30.0}
    groups = iter([start, {"lowbw": 30.5, "h264": 29.9}, {"lowbw": 30.1, "h264": 30.05}, {"lowbw": 30.6, "h264": 29.8}])

    def fake_validate(self):
        g = next(groups)
        return {"psnr": sum(g.values()) / 2, "ssim": 0.5, **{f"psnr_{k}": v for k, v in g.items()}}

    init = {**TEACHER, "init": str(_teacher_checkpoint(tmp_path))}
    monkeypatch.setattr(Trainer, "validate", fake_validate)
    res = train(tiny_config(tmp_path, name="wg", model=init, val={"every": 2, "select": "worst_group"}))
    assert res.best["step"] == 4 and res.best["score"] == pytest.approx(0.05)
    assert res.baselines["start"]["psnr_h264"] == 30.0
    assert load_checkpoint(res.run_dir / "last.pth")["start_val"]["psnr_lowbw"] == 30.0
    assert "worst-group change +0.050 dB" in capsys.readouterr().err

    groups = iter([start, {"lowbw": 30.5, "h264": 29.9}, {"lowbw": 30.6, "h264": 29.8}, {"lowbw": 30.6, "h264": 29.7}])
    res = train(tiny_config(tmp_path, name="wg_loses", model=init, val={"every": 2, "select": "worst_group"}))
    assert res.best["step"] == 2 and "no validated step gained on every val group" in capsys.readouterr().err

    with pytest.raises(ConfigError, match="val.select"):
        tiny_config(tmp_path, name="bad_rule", val={"select": "mean"})


@pytest.mark.parametrize("when", ["step", "save"])
def test_second_ctrl_c_while_stopping_says_so_and_exits_130(tmp_path, monkeypatch, capsys, when):
    """A second Ctrl-C while the run is stopping (finishing its step, or saving last.pth) ends it at
    once with a warning that says what is on disk and 'interrupted' (it ended silently, exit 130)."""
    from kdsharp.cli import main
    from kdsharp.train import Trainer

    tiny_config(tmp_path, name="twice", schedule={"iters": 50, "warmup": 2})
    original_step, original_save = Trainer._train_step, Trainer.save

    def step(self, batch):
        terms = original_step(self, batch)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
            if when == "step":
                os.kill(os.getpid(), signal.SIGINT)
        return terms

    def save(self, name="last.pth"):
        if when == "save" and self._stop:
            os.kill(os.getpid(), signal.SIGINT)
        return original_save(self, name)

    monkeypatch.setattr(Trainer, "_train_step", step)
    monkeypatch.setattr(Trainer, "save", save)
    assert main(["train", "teacher", "--config", str(tmp_path / "twice.yaml")]) == 130
    err = capsys.readouterr().err
    assert "second Ctrl-C: aborting" in err and "no last.pth was saved" in err and "interrupted" in err, err
    run = tmp_path / "runs" / "twice"
    assert not (run / "last.pth").exists() and not list(run.glob(".*part*"))


def test_out_with_an_explicit_resume_path_is_refused_not_ignored(tmp_path, capsys):
    """--out DIR beside --resume PATH was silently ignored (the run went on in PATH's folder): now a
    one-line error naming both options; an --out that is the checkpoint's own runs folder is fine."""
    from kdsharp.cli import main

    tiny_config(tmp_path, name="res")
    cfg_path, last = tmp_path / "res.yaml", tmp_path / "runs" / "res" / "last.pth"
    assert main(["train", "teacher", "--config", str(cfg_path), "schedule.iters=2", "export=false"]) == 0
    capsys.readouterr()
    for args in (["--out", str(tmp_path / "other")], [f"out_dir={tmp_path / 'other'}"]):
        assert main(["train", "teacher", "--resume", str(last), *args, "schedule.iters=3"]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and "--resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "other").exists() and load_checkpoint(last)["step"] == 2
    ok = ["--resume", str(last), "--out", str(tmp_path / "runs"), "schedule.iters=3", "export=false"]
    assert main(["train", "teacher", *ok]) == 0 and load_checkpoint(last)["step"] == 3


def test_resume_path_with_a_config_of_another_name_keeps_the_run_s_name(tmp_path, capsys):
    """--resume runs/res/last.pth --config other.yaml exported other.safetensors beside the run's own
    (stale) res.safetensors; the run keeps its name, and a name= that disagrees is refused."""
    from kdsharp.cli import main

    tiny_config(tmp_path, name="res")
    last = tmp_path / "runs" / "res" / "last.pth"
    assert main(["train", "teacher", "--config", str(tmp_path / "res.yaml"), "schedule.iters=2"]) == 0
    other = tmp_path / "other.yaml"
    other.write_text((tmp_path / "res.yaml").read_text().replace("name: res\n", "name: other\n"))
    assert main(["train", "teacher", "--config", str(other), "--resume", str(last), "schedule.iters=3"]) == 0
    assert load_checkpoint(last)["step"] == 3 and load_checkpoint(last)["config"]["name"] == "res"
    assert sorted(p.name for p in last.parent.glob("*.safetensors")) == ["res.safetensors"]
    capsys.readouterr()
    assert main(["train", "teacher", "--config", str(other), "--resume", str(last), "name=x", "schedule.iters=4"]) == 2
    err = capsys.readouterr().err
    assert "name=x and --resume" in err and len(err.strip().splitlines()) == 1 and load_checkpoint(last)["step"] == 3


def _mini_corpus(root: Path) -> Path:
    """A corpus folder with two synthetic photos in each split."""
    import json

    import cv2

    from kdsharp.data.synthetic import synthetic_images

    records = []
    for i, img in enumerate(synthetic_images(6, 64, 1)):
        split = ("train", "val", "test")[i % 3]
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"p{i}.png"), img[:, :, ::-1])
        records.append({"file": f"images/p{i}.png", "tag": "object", "group": f"p{i}", "split": split})
    (root / "manifest.json").write_text(json.dumps({"version": 1, "images": records}))
    return root


def test_training_on_the_corpus_test_split_warns(tmp_path, capsys):
    """The corpus test split is reserved for `kdsharp eval`: a run (or a bundle) reading it, for
    training or for validation, says so in one warning line per source; train/val splits say nothing."""
    from kdsharp.data.pack import pack_bundle
    from kdsharp.train import train

    corpus = str(_mini_corpus(tmp_path / "corpus"))
    warning = "corpus split 'test' is reserved for evaluation"
    cfg = tiny_config(
        tmp_path,
        name="ok",
        data={"sources": [{"type": "corpus", "path": corpus, "split": "train"}]},
        val={"sources": [{"type": "corpus", "path": corpus, "split": "val"}]},
        schedule={"iters": 1},
    )
    train(cfg)
    assert warning not in capsys.readouterr().err
    cfg = tiny_config(
        tmp_path,
        name="leak",
        data={"sources": [{"type": "corpus", "path": corpus, "split": "test"}]},
        val={"sources": [{"type": "corpus", "path": corpus, "split": "test"}]},
        schedule={"iters": 1},
    )
    train(cfg)
    err = capsys.readouterr().err
    assert err.count(warning) == 2 and "data.sources[0]" in err and "val.sources[0]" in err, err
    pack_bundle([{"type": "corpus", "path": corpus, "split": "test"}], tmp_path / "b.zip", crop=32, clean=2, pairs=0)
    err = capsys.readouterr().err
    assert err.count(warning) == 1 and "sources[0]" in err


def test_a_run_that_fails_while_being_built_leaves_no_run_folder(tmp_path):
    """A bad setting found while the run is built (model.init, a data source) left a run folder
    holding only config.yaml; an existing run's folder is kept as it is."""
    from kdsharp.train import train

    cfg = tiny_config(tmp_path, name="bad", model={"init": str(tmp_path / "missing.pth")})
    with pytest.raises(InputError):
        train(cfg)
    assert not (tmp_path / "runs" / "bad").exists()
    cfg = tiny_config(tmp_path, name="bad", data={"sources": [{"type": "folder", "path": str(tmp_path / "no")}]})
    (tmp_path / "runs" / "bad").mkdir(parents=True)
    with pytest.raises(InputError):
        train(cfg)
    assert (tmp_path / "runs" / "bad").is_dir()


def test_loader_workers_are_capped_at_the_usable_cores(monkeypatch, capsys):
    """A GPU config's data.workers on a small machine: capped, said once; fewer are kept as asked."""
    import kdsharp.train.loaders as loaders

    monkeypatch.setattr(loaders, "available_cores", lambda: 2)
    assert loaders.loader_workers(12) == 2
    assert "data.workers=12 is more than the 2 cores" in capsys.readouterr().err
    assert loaders.loader_workers(1) == 1 and loaders.loader_workers(0) == 0
    assert capsys.readouterr().err == ""


def test_a_crop_larger_than_the_images_is_warned_about_naming_the_setting(tmp_path, capsys):
    """data.crop (or val.size) larger than every image trained silently on padded/upscaled pixels:
    one warning line each names the setting and the fix."""
    from kdsharp.train import train

    train(tiny_config(tmp_path, name="fits", schedule={"iters": 1}))
    assert "images are smaller" not in capsys.readouterr().err
    train(tiny_config(tmp_path, name="big", data={"crop": 64}, val={"size": 64}, schedule={"iters": 1}))
    err = capsys.readouterr().err
    assert "data.crop=64: 4 of 4 images are smaller" in err and "lower data.crop to 48 or less" in err, err
    assert "val.size=64: 2 of 2 images are smaller" in err and "lower val.size to 40 or less" in err, err


def test_a_leading_tilde_in_path_settings_is_the_home_folder(tmp_path, monkeypatch):
    """out_dir: ~/runs in a config made a folder named '~' in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "t.yaml"
    path.write_text("out_dir: ~/runs\nteacher_cache: {path: ~/bank.safetensors, extra: [~/a.safetensors, b]}\n")
    cfg = load_config(path, ["val.path=~/pairs", "teacher=teacher"])
    home = tmp_path / "home"
    assert cfg["out_dir"] == str(home / "runs") and cfg["val"]["path"] == str(home / "pairs")
    assert cfg["teacher_cache"]["path"] == str(home / "bank.safetensors") and cfg["teacher"] == "teacher"
    assert cfg["teacher_cache"]["extra"] == [str(home / "a.safetensors"), "b"]


def test_bank_labelling_runs_bf16_on_a_cpu_with_bfloat16_only_when_allowed(monkeypatch):
    """teacher_cache.bf16: auto labels in bf16 where the CPU multiplies bfloat16 itself, float32 elsewhere
    or with false; a CUDA run keeps its own amp."""
    import kdsharp.devices as devices
    from kdsharp.train.loaders import labelling_autocast

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    factory, name = labelling_autocast(cpu, "auto")
    assert name == "bf16"
    with factory():
        assert torch.nn.functional.linear(torch.ones(1, 4), torch.ones(2, 4)).dtype == torch.bfloat16
    assert labelling_autocast(cpu, False) == (None, "fp32")
    run = object()
    assert labelling_autocast(torch.device("cuda"), "auto", run, "bf16") == (run, "bf16")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert labelling_autocast(cpu, "auto") == (None, "fp32")
    with pytest.raises(ConfigError, match="teacher_cache.bf16"):
        load_config(None, ["teacher_cache.bf16=yes"])
