"""kdsharp bench: result keys and values, batches, ONNX backend, CLI JSON and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from kdsharp.cli import main
from kdsharp.errors import KdsharpError
from kdsharp.evaluate import benchmark, parse_size

KEYS = {
    "fps",
    "p50_ms",
    "p95_ms",
    "model",
    "device",
    "backend",
    "size",
    "batch",
    "peak_mem_mb",
    "threads",
    "torch_version",
    "p50_ms_per_frame",
    "p95_ms_per_frame",
    "iters",
    "warmup",
}


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.calls = 0
        self.shapes = set()

    def forward(self, x):
        self.calls += 1
        self.shapes.add(tuple(x.shape))
        return self.conv(x).clamp(0, 1)


def _check(r: dict, batch: int = 1):
    assert KEYS <= set(r)
    assert r["fps"] > 0 and r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] and r["peak_mem_mb"] >= 0
    assert r["p50_ms_per_frame"] == pytest.approx(r["p50_ms"] / batch)
    assert r["fps"] == pytest.approx(1000.0 * batch / r["p50_ms"])
    assert r["batch"] == batch and r["torch_version"] == torch.__version__


def test_benchmark_module_counts_calls_and_shapes():
    m = Tiny().eval()  # an eval-mode module is timed as is (a training one is copied)
    r = benchmark(m, size=(40, 24), iters=4, warmup=2, threads=1)
    _check(r)
    assert m.calls == 6 and m.shapes == {(1, 3, 24, 40)}
    assert r["iters"] == 4 and r["warmup"] == 2 and r["threads"] == 1 and r["size"] == "40x24"
    assert r["params"] == sum(p.numel() for p in m.parameters())


def test_benchmark_batch_and_time_limit():
    m = Tiny().eval()  # an eval-mode module is timed as is (a training one is copied)
    r = benchmark(m, size=(32, 32), batch=3, iters=50, warmup=0, max_seconds=0.0)
    _check(r, batch=3)
    assert m.shapes == {(3, 3, 32, 32)}
    assert r["iters"] == 3  # stops after the time limit, but never with fewer than 3 timed runs


def test_benchmark_onnx_backend():
    r = benchmark(Tiny(), size=(32, 24), backend="onnx", iters=2, warmup=1)
    _check(r)
    assert r["backend"] == "onnx" and "onnxruntime_version" in r


def test_benchmark_registered_model_without_weights():
    r = benchmark("fast", size=(64, 48), iters=2, warmup=1)
    _check(r)
    assert r["model"] == "fast" and r["params"] > 0


def test_benchmark_times_a_luma_model_on_the_y_plane_too(monkeypatch):
    """A luma model (``fast``) is also timed on a uint8 Y plane, the path video takes; others are not."""
    import kdsharp.infer.frames as frames

    planes = []
    real = frames.LumaNet.__call__
    monkeypatch.setattr(frames.LumaNet, "__call__", lambda self, y, full: planes.append(y.shape) or real(self, y, full))
    r = benchmark("fast", size=(64, 48), iters=2, warmup=1)
    assert r["yplane_fps"] > 0 and r["yplane_p50_ms"] > 0
    assert planes == [(48, 64)] * 3  # warm-up + timed calls, on a (height, width) plane
    assert "yplane_fps" not in benchmark(Tiny(), size=(32, 24), iters=1, warmup=0)  # an RGB model
    assert "yplane_fps" not in benchmark("fast", size=(32, 24), batch=2, iters=1, warmup=0)  # a batch: RGB only


def test_benchmark_bad_arguments(monkeypatch):
    import kdsharp.evaluate.bench as bench_module

    with pytest.raises(KdsharpError, match="backend"):
        benchmark(Tiny(), size=(32, 32), backend="tensorrt")
    monkeypatch.setattr(bench_module, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(KdsharpError, match="bfloat16 instructions"):
        benchmark(Tiny(), size=(32, 32), half=True)
    if not torch.cuda.is_available():
        with pytest.raises(KdsharpError, match="CUDA"):
            benchmark(Tiny(), size=(32, 32), device="cuda")
    assert parse_size("640x360") == (640, 360)
    for bad in ("640", "axb", "8x8", "0x100"):
        with pytest.raises(KdsharpError, match="size"):
            parse_size(bad)


def test_cli_bench_json(capsys):
    code = main(
        [
            "bench",
            "--model",
            "fast",
            "--size",
            "48x32",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--batch",
            "2",
            "--threads",
            "1",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    r = json.loads(out)  # exactly one JSON object on stdout
    _check(r, batch=2)
    assert (r["model"], r["device"], r["backend"], r["size"], r["threads"]) == ("fast", "cpu", "torch", "48x32", 1)
    # which kernels ran: an AVX2-only CPU (or ATEN_CPU_CAPABILITY=avx2) runs the same model slower
    assert r["cpu_kernels"] == str(torch.backends.cpu.get_cpu_capability()) and r["cpu_kernels"] in (
        "DEFAULT",
        "AVX2",
        "AVX512",
        "ZVECTOR",
        "SVE256",
        "NO AVX",
    )
    assert main(["bench", "--model", "fast", "--size", "48x32", "--iters", "2", "--warmup", "1"]) == 0
    assert f"{r['cpu_kernels']} kernels" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["bench", "--model", "no_such_model", "--size", "32x32"], "no_such_model"),
        (["bench", "--model", "/nowhere/model.safetensors", "--size", "32x32"], "/nowhere/model.safetensors"),
        (["bench", "--size", "wide"], "--size"),
        (["bench", "--size", "32x32", "--backend", "tpu"], "tpu"),
    ],
)
def test_cli_bench_errors_are_one_line(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err


def test_cli_bench_video_of_a_non_video_file_names_it(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    code = main(["bench", "--video", str(photo), "--model", "fast"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {photo}: is not a video") and ".mp4" in lines[0]  # the input, not a temp file


def test_bench_half_on_a_cpu_with_bf16_times_bf16(monkeypatch):
    """On a CPU that multiplies bfloat16 in hardware, --half times the model under bf16 autocast and says so."""
    import kdsharp.devices as devices
    import kdsharp.evaluate.bench as bench_module

    monkeypatch.setattr(bench_module, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    r = benchmark(Tiny(), size=(32, 32), half=True, iters=1, warmup=0, device="cpu")
    assert r["half"] and r["precision"] == "bf16"
    assert benchmark(Tiny(), size=(32, 32), iters=1, warmup=0, device="cpu")["precision"] == "fp32"


def test_cli_bench_half_with_int8_names_both_options(capsys):
    code = main(["bench", "--model", "fast", "--size", "32x32", "--backend", "onnx-int8", "--half"])
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert "--half" in lines[0] and "--backend onnx-int8" in lines[0] and "int8=True" not in lines[0]


def test_cli_bench_names_video_options_it_ignores_without_a_video(capsys):
    code = main(
        [
            "bench",
            "--model",
            "fast",
            "--size",
            "48x32",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--frames",
            "5",
            "--crf",
            "20",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["model"] == "fast"  # stdout stays one JSON object
    assert "--frames, --crf time the video pipeline: ignored without --video FILE" in captured.err


def test_cli_bench_cuda_without_a_gpu_names_the_device_and_the_fix(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--model", "fast", "--device", "cuda", "--size", "64x64", "--iters", "1"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--device cuda: no CUDA GPU" in lines[0] and "--device cpu" in lines[0], lines


def test_benchmark_takes_auto_as_the_other_commands_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = benchmark(nn.Conv2d(3, 3, 3, padding=1), size=(32, 32), device="auto", iters=1, warmup=0)
    assert r["device"] == "cpu"


def test_cli_bench_video_says_when_reuse_did_not_apply(tmp_path, capsys):
    """--reuse serves fast and the student, not the teacher: its run says it had no effect; stdout stays JSON."""
    from test_infer_helpers import make_video

    src = make_video(tmp_path / "clip.mp4", frames=3, audio=False)
    code = main(["bench", "--video", str(src), "--model", "teacher", "--reuse", "--threads", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["path"] == "rgb"
    assert json.loads(captured.out)["cpu_kernels"] == str(torch.backends.cpu.get_cpu_capability())
    assert "warning: --reuse had no effect on 1 video (clip.mp4)" in captured.err
    code = main(["bench", "--video", str(src), "--model", "student", "--reuse", "--threads", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["reused"] is not None and "--reuse" not in captured.err


def test_cli_bench_reports_the_precision_it_chose_and_no_half_forces_float32(tmp_path, capsys, monkeypatch):
    """With neither --half nor --no-half the student runs bf16 where the CPU multiplies bfloat16 and
    float32 elsewhere; both the model bench and the video bench say which; --no-half is float32."""
    from test_infer_helpers import make_video

    import kdsharp.devices as devices

    src = make_video(tmp_path / "clip.mp4", frames=2, audio=False)
    for native in (True, False):
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda native=native: native)
        expected = "bf16" if native else "fp32"
        assert main(["bench", "--model", "student", "--size", "64x48", "--iters", "1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["precision"] == expected
        assert main(["bench", "--video", str(src), "--model", "student", "--threads", "1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["precision"] == expected
        assert main(["bench", "--video", str(src), "--model", "student", "--no-half", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["precision"] == "fp32"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert main(["bench", "--model", "fast", "--size", "64x48", "--iters", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "fp32"  # a luma model: float32 by default


def test_benchmark_threads_follow_kdsharp_threads_as_sharpen_does(monkeypatch):
    monkeypatch.setenv("KDSHARP_THREADS", "1")
    r = benchmark(nn.Conv2d(3, 3, 3, padding=1), size=(40, 24), iters=2, warmup=0)
    assert r["threads"] == 1


def test_cli_bench_video_crf_out_of_range_names_the_video_not_a_temporary_file(tmp_path, capsys, monkeypatch):
    from test_infer_helpers import make_video

    import kdsharp.infer.sharpener as sharpener

    src = make_video(tmp_path / "clip.mp4", frames=2, audio=False)
    monkeypatch.setattr(sharpener, "Sharpener", None)  # refused before the model loads
    assert main(["bench", "--video", str(src), "--crf", "60"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {src}: --crf 60 is out of range"), lines


def test_cli_bench_names_model_only_options_it_ignores_with_a_video(tmp_path, capsys):
    from test_infer_helpers import make_video

    src = make_video(tmp_path / "clip.mp4", frames=2, audio=False)
    code = main(["bench", "--video", str(src), "--size", "7x5", "--iters", "3", "--threads", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["frames"] == 2
    assert "--size, --iters time the bare model: ignored with --video" in captured.err


def test_cli_bench_onnx_folder_or_empty_file_is_named_so(tmp_path, capsys):
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    empty = tmp_path / "empty.onnx"
    empty.touch()
    for path, problem in ((folder, "is a folder, not an ONNX model"), (empty, "file is empty")):
        assert main(["bench", "--model", str(path), "--backend", "onnx", "--size", "32x32"]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"{path}: {problem}" in lines[0], lines


def test_cli_bench_help_says_the_thread_default_and_size_unit(capsys):
    assert main(["bench", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())  # the help's box, unwrapped
    assert "library default" not in out and "$KDSHARP_THREADS, else the available cores" in out
    assert "WIDTHxHEIGHT in pixels" in out


def test_an_onnx_file_is_not_reported_as_run_in_half_precision(tmp_path, capsys):
    """An ONNX file runs in the precision it was exported in: --half would only mislabel the figures."""
    from kdsharp.infer.export import export_onnx

    path = export_onnx(Tiny(), tmp_path / "tiny.onnx")
    with pytest.raises(KdsharpError, match="half"):
        benchmark(str(path), size=(32, 32), backend="onnx", half=True, iters=1, warmup=0)
    assert main(["bench", "--model", str(path), "--backend", "onnx", "--half", "--size", "32x32", "--json"]) == 2
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert captured.out == "" and len(lines) == 1 and "drop --half" in lines[0], lines
