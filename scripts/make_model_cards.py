"""Write kdsharp/weights/<name>.md model cards from the run folders (numbers read, not typed).

Maintainer script, run from the repo root after training the shipped weights (configs/*_cpu*.yaml)
and copying runs/<run>/<run>.safetensors into kdsharp/weights/<name>.safetensors:
    python scripts/make_model_cards.py
The wall-clock times are written by hand in SPEC (the logs do not hold them)."""
import csv, json, sys
from pathlib import Path
import yaml
from kdsharp.registry import model_info, WEIGHTS_DIR

RUNS = Path("runs")
SPEC = {
    "teacher": dict(run="teacher_cpu_ft", stage1="teacher_cpu", cfg="configs/teacher_cpu.yaml, configs/teacher_cpu_ft.yaml",
                    cmd="kdsharp train teacher --config configs/teacher_cpu.yaml && kdsharp train teacher --config configs/teacher_cpu_ft.yaml",
                    arch="Restormer-tiny: the published Restormer (MDTA attention, GDFN, pixel-unshuffle/shuffle, 4-level U-shape, refinement, global residual) with dim 24, blocks [1,2,2,3], 1 refinement block, heads [1,2,4,8]; at test time frames larger than 96 px run in overlapping 96 px local windows (`local_window=96`, TLC-style: the channel attention then sees the statistics of the 96 px crops it was trained on)",
                    time="stage 1 about 59 min (steps 0-278 on 1 thread while other jobs shared the machine, then 2 threads; about 0.75 s/step); stage 2 about 77 min at 0.8-1.0 s/step on 2 threads (started with a 6000-step schedule and, at step 1328, resumed with the 5000-step schedule of the config, so its LR over steps 0-1328 was up to 5% higher than a fresh run's)"),
    "student": dict(run="v1/student_cpu_kd", cfg="configs/student_cpu.yaml", teacher="the stage-1 teacher (`configs/teacher_cpu.yaml`, before the stage-2 fine-tuning of the shipped `teacher`)",
                    cmd="kdsharp train ablation --config configs/student_cpu.yaml --teacher runs/teacher_cpu/teacher_cpu.safetensors   # writes student_cpu_kd (this) and student_cpu_nokd",
                    arch="ResUNet-lite: pixel-unshuffle by 4, 1x1 stem, residual U-Net with 16/32/64 channels, pixel-shuffle back, predicts a residual on the input",
                    time="about 9 min on 1 CPU thread (teacher cache: 3072 crops, built once in about 7 min)"),
    "student_nokd": dict(run="v1/student_cpu_nokd", cfg="configs/student_cpu.yaml", teacher="the stage-1 teacher (`configs/teacher_cpu.yaml`), used only to fill the shared crop cache",
                    cmd="kdsharp train ablation --config configs/student_cpu.yaml --teacher runs/teacher_cpu/teacher_cpu.safetensors   # writes student_cpu_kd and student_cpu_nokd (this)",
                    arch="ResUNet-lite (same as `student`); trained WITHOUT the distillation term, for the ablation",
                    time="about 9 min on 1 CPU thread"),
    "fast": dict(run="fast_cpu", cfg="configs/fast_cpu.yaml",
                 cmd="kdsharp train student --config configs/fast_cpu.yaml --teacher runs/teacher_cpu_ft/teacher_cpu_ft.safetensors",
                 arch="FastNet: luma (BT.601 Y) only, pixel-unshuffle by 4, 16 channels, head + 3 body + tail re-parameterizable blocks (3x3, 1x1-3x3, Sobel-x/Sobel-y/Laplacian branches, identity; PReLU) folded into single 3x3 convs for deployment; the luma residual is added to R, G and B (chroma passed through)",
                 time="about 7 min on 1 CPU thread, next to another 1-thread run"),
}
DATA = """- Training photos (clean): scikit-image's bundled images astronaut, chelsea, immunohistochemistry,
  colorwheel, camera, brick, grass, gravel, page, text, coins, hubble_deep_field, retina, moon,
  clock, cell; Debian `mate-backgrounds` nature photos Aqua, Dune, FreshFlower, Garden, GreenMeadow,
  LadyBird, RainDrops, TwoWings (long side scaled to 1280 px, weight 2); 48 generated images
  (charts, text, shapes, gradients, textures; `{type: synthetic, seed: 0}`).
- Never trained on: skimage coffee, rocket, the motorcycle stereo pair and mate YellowFlower, Wood,
  Storm (the `kdsharp eval` hold-out); mate Blinds and 4 generated images with seed 777 (validation).
- Degradations: the `mixed` preset, applied on the fly: blur 70% (isotropic/anisotropic/generalized/
  plateau Gaussian, motion, defocus), noise 50% (Gaussian colour/grey or Poisson, up to 10/255),
  webcam MJPEG 25% (q 50-95), down/up-scaling 60% (1.25-3x, random interpolations), video codec 70%
  (x264/VP8/VP9/MPEG-4 through PyAV at CRF 23-38 on short pseudo-clips), second pass 20%."""

for name, s in SPEC.items():
    run = RUNS / s["run"]
    cfg = yaml.safe_load(open(run / "config.yaml"))
    val = list(csv.DictReader(open(run / "val_log.csv")))
    base = json.load(open(run / "baselines.json"))
    info = model_info(name)
    w = WEIGHTS_DIR / f"{name}.safetensors"
    loss = ", ".join(f"{k} ({v.get('type', '')} x{v['weight']})" for k, v in cfg["loss"].items() if v.get("weight"))
    who = s.get("teacher", "`teacher` (kdsharp/weights/teacher.safetensors)")
    teacher_line = f"\n- Teacher: {who}, frozen; its outputs cached on {cfg['teacher_cache']['size']} fixed degraded {cfg['data']['crop']}x{cfg['data']['crop']} crops." if cfg.get("teacher") else ""
    iters = (f"{cfg['schedule']['iters']} at batch {cfg['data']['batch']} x {cfg['data']['crop']}x{cfg['data']['crop']} crops; "
             f"AdamW lr {cfg['optim']['lr']}, cosine with {cfg['schedule']['warmup']} warm-up steps, gradient clip "
             f"{cfg['grad_clip']}, EMA {cfg['ema']}; seed {cfg['seed']}")
    curve = "\n".join(f"| {r['step']} | {float(r['psnr']):.2f} | {float(r['ssim']):.4f} |" for r in val)
    if s.get("stage1"):
        run1 = RUNS / s["stage1"]
        cfg1 = yaml.safe_load(open(run1 / "config.yaml"))
        val1 = list(csv.DictReader(open(run1 / "val_log.csv")))
        iters = (f"stage 1: {cfg1['schedule']['iters']} at batch {cfg1['data']['batch']} x {cfg1['data']['crop']}x"
                 f"{cfg1['data']['crop']} crops, AdamW lr {cfg1['optim']['lr']}, cosine with {cfg1['schedule']['warmup']} "
                 f"warm-up steps, seed {cfg1['seed']}; stage 2 (`model.init` = stage 1's EMA weights, a warm restart "
                 f"on larger crops as in Restormer's progressive training): {iters}")
        n1 = int(cfg1["schedule"]["iters"])
        curve = ("\n".join(f"| 1 | {r['step']} | {float(r['psnr']):.2f} | {float(r['ssim']):.4f} |" for r in val1) + "\n"
                 + "\n".join(f"| 2 | {n1}+{r['step']} | {float(r['psnr']):.2f} | {float(r['ssim']):.4f} |" for r in val))
        curve_head = "| stage | step | PSNR (dB) | SSIM |\n|---:|---:|---:|---:|"
    else:
        curve_head = "| step | PSNR (dB) | SSIM |\n|---:|---:|---:|"
    t_label = "stage-1 teacher" if "stage-1" in s.get("teacher", "") else "teacher"
    t_row = f"| {t_label} | {base['teacher']['psnr']:.2f} | {base['teacher']['ssim']:.4f} |\n" if "teacher" in base else ""
    text = f"""# Model card: `{name}`

- Role: {info['role']}; loads with `kdsharp.load_model("{name}")` or `--model {name}`.
- Architecture: {s['arch']}.
- Parameters: {info['params']:,}; {info['gmacs_1080p']:.1f} GMACs per 1920x1080 frame.
- Weights: `kdsharp/weights/{name}.safetensors`, fp16 EMA weights ({w.stat().st_size / 1e6:.2f} MB), metadata `arch` + `arch_kwargs`.

## Training
{DATA}{teacher_line}
- Loss: {loss}.
- Iterations: {iters}.
- Hardware and time: the project's 2-core CPU (no GPU), {s['time']}.
- Reproduce: `{s['cmd']}` (config{'s' if ',' in s['cfg'] else ''} `{s['cfg']}`).

## Validation (16 crops of 128x128 from mate Blinds + 4 generated images, `mixed`, seed 10000)

| | PSNR (dB) | SSIM |
|---|---:|---:|
| input | {base['input']['psnr']:.2f} | {base['input']['ssim']:.4f} |
{t_row}| {name} (final) | {float(val[-1]['psnr']):.2f} | {float(val[-1]['ssim']):.4f} |

Curve:

{curve_head}
{curve}

Held-out evaluation (per preset, against the tuned unsharp mask and the other models): see the
README's Results section and `kdsharp eval`.

## Limits
Trained on a 2-core CPU (times above) on a few dozen photos: it removes part of the blur, noise and
codec artefacts but is far from what the same recipe reaches with a GPU budget
(`configs/{'teacher' if name == 'teacher' else ('fast' if name == 'fast' else 'student')}.yaml`). Few faces were in the data (one portrait).
"""
    (WEIGHTS_DIR / f"{name}.md").write_text(text)
    print("wrote", name)
