"""The web page of ``kdsharp app`` (Gradio): tabs Image, Video, Degrade, Webcam and Blind comparison.

Only the page lives here; what each button does is a plain function of :mod:`kdsharp.app.processing`,
:mod:`kdsharp.app.compare` and :mod:`kdsharp.app.store`. Handlers turn every error into a message
on the page (and a toast), so a bad upload never stops the server. Importing this module imports
gradio (the ``app`` extra); the rest of :mod:`kdsharp.app` does not need it.
"""

from __future__ import annotations

import contextvars
import functools
import os
import signal
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from kdsharp.app import compare as cmp
from kdsharp.app.processing import (
    MODELS,
    CancelFlags,
    Cancelled,
    Limits,
    Models,
    Workspace,
    degrade_and_sharpen,
    metrics_markdown,
    model_choices,
    preview,
    read_upload_image,
    sharpen_image_file,
    sharpen_video_file,
    to_rgb8,
    upload_name,
    upload_path,
    webcam_frame,
)
from kdsharp.app.store import VoteStore
from kdsharp.console import error, info, warn
from kdsharp.errors import KdsharpError, OutputError

CSS = """
#compare-a img, #compare-b img { image-rendering: pixelated; }
.kd-note { opacity: 0.75; font-size: 0.9em; }
"""
RANDOM = "random"


def _samples() -> dict[str, Path]:
    from kdsharp.data import sample_paths

    return {p.name: p for p in sample_paths()}


def _message(e: BaseException) -> str:
    """The line a visitor sees for an error: ours as they are, anything else with its type."""
    if isinstance(e, KdsharpError):
        return str(e)
    return f"unexpected error: {type(e).__name__}: {e} (the server keeps running; the details are in its log)"


def _on_error(outputs: int, message_at: int) -> Callable:
    """Decorate a handler: on an error, log it, show a toast and return ``outputs`` values that clear
    the results and put the message at position ``message_at``."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - every error becomes a message on the page, never a crash
                if not isinstance(e, KdsharpError):
                    traceback.print_exc()
                text = _message(e)
                error(text)
                gr.Warning(text)
                values: list = [None] * outputs  # no stale result next to the message
                values[message_at] = f"**Could not do it:** {text}"
                return tuple(values) if outputs > 1 else values[0]

        return run

    return wrap


def build(
    models: Models,
    store: VoteStore,
    workspace: Workspace,
    limits: Limits,
    methods: tuple[str, ...] = cmp.METHODS,
    store_problem: str | None = None,
):
    """The gradio Blocks of the app (not launched)."""
    samples = _samples()
    flags = CancelFlags()
    theme = gr.themes.Soft(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "SFMono-Regular", "monospace"]
    )  # no web fonts: works offline
    model_kw: dict[str, Any] = dict(choices=model_choices(), value="fast", label="Model")
    heavy: dict[str, Any] = dict(concurrency_id="model", concurrency_limit=1)  # one model job at a time; visitors queue

    with gr.Blocks(title="kdsharp", theme=theme, css=CSS, analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(
            "## kdsharp — sharpen blurry, compressed video-call footage\n"
            "Everything runs on this machine; nothing is uploaded anywhere else."
        )

        # ------------------------------------------------------------------ Image
        with gr.Tab("Image", id="image"):
            with gr.Row():
                with gr.Column():
                    image_in = gr.Image(
                        label="Image (upload, drop or paste)",
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard"],
                        elem_id="image-input",
                        height=320,
                    )
                    image_model = gr.Dropdown(**model_kw, elem_id="image-model")
                    with gr.Accordion("Reference image (optional): the clean original, for PSNR / SSIM", open=False):
                        image_ref = gr.Image(
                            label="Reference",
                            type="filepath",
                            image_mode=None,
                            sources=["upload"],
                            elem_id="image-reference",
                            height=200,
                        )
                    image_run = gr.Button("Sharpen", variant="primary", elem_id="image-run")
                with gr.Column():
                    image_slider = gr.ImageSlider(
                        label="Before / after (drag the handle)",
                        type="numpy",
                        format="png",
                        interactive=False,
                        elem_id="image-slider",
                    )
                    image_info = gr.Markdown(elem_id="image-info")
                    image_file = gr.File(
                        label="Download the result (full size, same format and bit depth)",
                        interactive=False,
                        elem_id="image-download",
                    )

            @_on_error(3, 1)
            def on_image(payload, model, ref_payload):
                path = upload_path(payload)
                if path is None:
                    raise KdsharpError("upload an image first")
                ref = upload_path(ref_payload)
                res = sharpen_image_file(
                    path,
                    upload_name(payload, "pasted.png"),
                    model,
                    models,
                    workspace,
                    limits,
                    reference=ref,
                    reference_name=upload_name(ref_payload, "reference"),
                )
                return (res.before, res.after), res.summary() + "\n\n" + metrics_markdown(res.metrics), str(res.path)

            image_run.click(
                on_image,
                [image_in, image_model, image_ref],
                [image_slider, image_info, image_file],
                preprocess=False,
                **heavy,
            )

        # ------------------------------------------------------------------ Video
        with gr.Tab("Video", id="video"):
            with gr.Row():
                with gr.Column():
                    video_in = gr.Video(
                        label="Clip (mp4, mov, mkv, avi, webm, m4v)",
                        sources=["upload"],
                        elem_id="video-input",
                        height=300,
                    )
                    video_model = gr.Dropdown(**model_kw, elem_id="video-model")
                    with gr.Row():
                        video_run = gr.Button("Sharpen the clip", variant="primary", elem_id="video-run")
                        video_cancel = gr.Button("Cancel", variant="stop", elem_id="video-cancel")
                with gr.Column():
                    video_out = gr.Video(
                        label="Side by side: input | sharpened", interactive=False, elem_id="video-output", height=300
                    )
                    video_info = gr.Markdown(elem_id="video-info")
                    video_file = gr.File(
                        label="Download the sharpened clip (same container, audio kept)",
                        interactive=False,
                        elem_id="video-download",
                    )

            @_on_error(3, 1)
            def on_video(payload, model, request: gr.Request, progress=gr.Progress()):  # noqa: B008 - gradio's idiom
                path = upload_path(payload)
                if path is None:
                    raise KdsharpError("upload a clip first")
                key = getattr(request, "session_hash", None) or "local"
                flag = flags.start(key)

                ctx = contextvars.copy_context()  # gradio finds its event here; frames are counted in other threads

                def report(done: int, total: int | None, stage: str) -> None:
                    ctx.copy().run(progress, (done, total), desc=stage, unit="frames")

                try:
                    res = sharpen_video_file(
                        path,
                        upload_name(payload, "clip.mp4"),
                        model,
                        models,
                        workspace,
                        limits,
                        report=report,
                        cancel=flag,
                    )
                except Cancelled as e:
                    return None, f"**{str(e).capitalize()}.**", None
                finally:
                    flags.finish(key)
                return str(res.side_by_side), res.summary, str(res.path)

            def on_cancel(request: gr.Request):
                key = getattr(request, "session_hash", None) or "local"
                if flags.cancel(key):
                    return "Cancelling…"
                return "No clip of yours is being sharpened; one still waiting in the queue is cancelled."

            video_job = video_run.click(
                on_video, [video_in, video_model], [video_out, video_info, video_file], preprocess=False, **heavy
            )
            # a running job stops at its next frame (the flag); ``cancels`` drops one still queued behind
            # other visitors' jobs, which the flag cannot reach (it is set up when the job starts)
            video_cancel.click(on_cancel, None, video_info, queue=False, cancels=[video_job])

        # ------------------------------------------------------------------ Degrade
        with gr.Tab("Degrade", id="degrade"):
            from kdsharp.data.config import list_presets, preset_summaries

            summaries = preset_summaries()
            with gr.Row():
                with gr.Column():
                    first = next(iter(samples.values()), None)
                    degrade_in = gr.Image(
                        label="A clean image (a sample, or yours)",
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard"],
                        value=str(first) if first else None,
                        elem_id="degrade-input",
                        height=280,
                    )
                    if samples:
                        gr.Examples([[str(p)] for p in samples.values()], inputs=[degrade_in], label="Samples")
                    degrade_preset = gr.Dropdown(
                        [(f"{p} — {summaries.get(p, '')}", p) for p in list_presets()],
                        value="lowbw",
                        label="Call-like degradation",
                        elem_id="degrade-preset",
                    )
                    degrade_seed = gr.Number(value=1, precision=0, label="Seed", minimum=0)
                    degrade_model = gr.Dropdown(**model_kw, elem_id="degrade-model")
                    degrade_run = gr.Button("Degrade, then sharpen", variant="primary", elem_id="degrade-run")
                with gr.Column():
                    degrade_slider = gr.ImageSlider(
                        label="Degraded / sharpened (drag the handle)",
                        type="numpy",
                        format="png",
                        interactive=False,
                        elem_id="degrade-slider",
                    )
                    degrade_info = gr.Markdown(elem_id="degrade-info")
                    degrade_files = gr.File(
                        label="Download the degraded and the sharpened copy",
                        file_count="multiple",
                        interactive=False,
                        elem_id="degrade-download",
                    )

            @_on_error(3, 1)
            def on_degrade(payload, preset, seed, model):
                path = upload_path(payload)
                if path is None:
                    raise KdsharpError("upload an image, or pick a sample, first")
                name = upload_name(payload, "image.png")
                rgb = to_rgb8(read_upload_image(path, name, limits)[0])
                res = degrade_and_sharpen(rgb, name, preset, int(seed or 0), model, models, workspace, limits)
                text = (
                    f"`{preset}` (seed {int(seed or 0)}) then **{model}** in {res.seconds:.2f} s; "
                    "quality against the clean image:\n\n" + metrics_markdown(res.metrics)
                )
                shown = (preview(res.degraded), preview(res.sharpened))  # as on the Image tab; downloads full size
                return shown, text, [str(res.degraded_path), str(res.sharpened_path)]

            degrade_run.click(
                on_degrade,
                [degrade_in, degrade_preset, degrade_seed, degrade_model],
                [degrade_slider, degrade_info, degrade_files],
                preprocess=False,
                **heavy,
            )

        # ------------------------------------------------------------------ Webcam
        with gr.Tab("Webcam", id="webcam"):
            gr.Markdown(
                "Live preview of **fast** on your browser's camera (the browser asks for permission; it "
                "works on `localhost` or over https). Frames are processed here and not stored.",
                elem_classes="kd-note",
            )
            with gr.Row():
                cam_in = gr.Image(
                    label="Camera", sources=["webcam"], streaming=True, type="numpy", elem_id="webcam-input"
                )
                cam_out = gr.Image(label="fast, live", interactive=False, elem_id="webcam-output")

            def on_frame(frame):
                try:
                    return webcam_frame(frame, models)
                except Exception as e:  # noqa: BLE001 - a bad frame must not end the stream
                    warn(f"webcam frame skipped: {_message(e)}")
                    return None

            cam_in.stream(
                on_frame,
                [cam_in],
                [cam_out],
                stream_every=0.15,
                time_limit=600,
                concurrency_id="webcam",
                concurrency_limit=2,
                show_progress="hidden",
            )

        # ------------------------------------------------------------------ Blind comparison
        with gr.Tab("Blind comparison", id="compare") as compare_tab:
            gr.Markdown(
                "The same crop, processed two ways, in random order. Which looks **better** (sharper, "
                "cleaner, more natural)? The names are shown after you vote. Methods: "
                + ", ".join(f"`{m}`" for m in methods)
                + ".",
                elem_classes="kd-note",
            )
            gr.Markdown(
                f"**Vote database problem:** {store_problem}" if store_problem else "", elem_id="compare-banner"
            )
            with gr.Row():
                compare_a = gr.Image(
                    label="A",
                    interactive=False,
                    format="png",
                    elem_id="compare-a",
                    show_download_button=False,
                    show_fullscreen_button=False,
                )
                compare_b = gr.Image(
                    label="B",
                    interactive=False,
                    format="png",
                    elem_id="compare-b",
                    show_download_button=False,
                    show_fullscreen_button=False,
                )
            with gr.Row():
                vote_a = gr.Button("A looks better", variant="primary", elem_id="vote-a")
                vote_same = gr.Button("About the same", elem_id="vote-same")
                vote_b = gr.Button("B looks better", variant="primary", elem_id="vote-b")
                compare_new = gr.Button("Skip: another pair", elem_id="compare-new")
            compare_status = gr.Markdown(elem_id="compare-status")
            with gr.Accordion("Image and degradation of the next pairs", open=False):
                with gr.Row():
                    compare_source = gr.Dropdown(
                        [RANDOM, *samples, "my upload"], value=RANDOM, label="Image", elem_id="compare-source"
                    )
                    compare_preset = gr.Dropdown(
                        [RANDOM, *cmp.PRESETS], value=RANDOM, label="Degradation", elem_id="compare-preset"
                    )
                    compare_upload = gr.Image(
                        label="Your own clean image (for 'my upload')",
                        type="filepath",
                        image_mode=None,
                        sources=["upload"],
                        height=140,
                        elem_id="compare-upload",
                    )
            compare_state = gr.State(None)

            rng = np.random.default_rng()

            def next_pair(source: str, preset: str, upload_payload) -> cmp.Comparison:
                if source == "my upload":
                    path = upload_path(upload_payload)
                    if path is None:
                        raise KdsharpError("upload your own image first (or pick another image)")
                    name = upload_name(upload_payload, "upload.png")
                    rgb = to_rgb8(read_upload_image(path, name, limits)[0])
                else:
                    name = source if source in samples else str(rng.choice(list(samples)))
                    rgb = to_rgb8(read_upload_image(samples[name], name, limits)[0])
                preset = preset if preset in cmp.PRESETS else str(rng.choice(cmp.PRESETS))
                try:
                    counts = store.pair_counts()
                except KdsharpError:
                    counts = Counter()
                pair = cmp.sample_pair(methods, counts, rng)
                return cmp.make_comparison(rgb, name, pair, preset, int(rng.integers(2**31)), models)

            @_on_error(4, 3)
            def on_new(source, preset, upload_payload):
                c = next_pair(source, preset, upload_payload)
                return cmp.zoom(c.image_a), cmp.zoom(c.image_b), c, "Which looks better?"

            def on_vote(
                choice: str, state: cmp.Comparison | None, source, preset, upload_payload, request: gr.Request | None
            ):
                if state is None:
                    raise KdsharpError("no pair is shown yet: press 'Skip: another pair' to load one")
                result = store.add(state.record(choice, getattr(request, "session_hash", None)))
                said = {"A": "A looked better", "B": "B looked better", "same": "about the same"}[choice]
                if result.saved:
                    text = f"Thanks: {said}; {state.reveal()}. Saved as vote #{result.vote_id}."
                else:
                    gr.Warning(result.message)
                    text = f"{said}; {state.reveal()}. **Not in the database yet:** {result.message}"
                c = next_pair(source, preset, upload_payload)
                return cmp.zoom(c.image_a), cmp.zoom(c.image_b), c, text + "\n\nNext pair loaded: which looks better?"

            @_on_error(4, 3)
            def on_tab(state, source, preset, upload_payload):
                if state is not None:
                    return gr.update(), gr.update(), state, gr.update()
                return on_new(source, preset, upload_payload)

            pair_inputs = [compare_source, compare_preset, compare_upload]
            pair_outputs = [compare_a, compare_b, compare_state, compare_status]
            compare_new.click(on_new, pair_inputs, pair_outputs, preprocess=False, **heavy)
            compare_tab.select(on_tab, [compare_state, *pair_inputs], pair_outputs, preprocess=False, **heavy)

            def voter(choice: str) -> Callable:
                @_on_error(4, 3)
                def vote(state, source, preset, upload_payload, request: gr.Request):
                    return on_vote(choice, state, source, preset, upload_payload, request)

                return vote

            for button, choice in ((vote_a, "A"), (vote_same, "same"), (vote_b, "B")):
                button.click(voter(choice), [compare_state, *pair_inputs], pair_outputs, preprocess=False, **heavy)

    return demo


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    votes: str | Path = "kdsharp-votes.db",
    methods: tuple[str, ...] = cmp.METHODS,
    device: str = "auto",
    limits: Limits | None = None,
    open_browser: bool = False,
) -> None:
    """Build the page and serve it until Ctrl-C (or SIGTERM); the temporary folder is removed on the way out."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    limits = limits or Limits()
    methods = cmp.check_methods(methods)
    _check_votes_path(Path(votes))
    workspace = Workspace()
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.path / "uploads")  # gradio's copies of uploads and results
    # Ctrl-C and SIGTERM stop the server the same way (also when started in the background, which ignores SIGINT)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        store = VoteStore(votes)
        problem = store.check()
        if problem:
            warn(f"{problem}; votes are kept in {store.pending_path} until it can be written")
        demo = build(Models(device), store, workspace, limits, methods, problem)
        demo.queue(default_concurrency_limit=1, max_size=64)
        if host not in ("127.0.0.1", "localhost", "::1"):
            warn(f"serving on {host}: anyone who can reach this machine can use the page")
        info(f"votes: {store.path}; temporary files: {workspace.path} (removed on exit); Ctrl-C stops the server")
        try:
            demo.launch(
                server_name=host,
                server_port=port,
                max_file_size=f"{limits.max_upload_mb:g}mb",
                show_error=True,
                inbrowser=open_browser,
                share=False,
                ssr_mode=False,
                show_api=False,
                allowed_paths=[str(workspace.path)],
                quiet=False,
            )
        except OSError as e:
            raise KdsharpError(
                f"cannot serve on {host}:{port} ({e}); choose another port=N or host=ADDRESS", params=["port", "host"]
            ) from e
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        workspace.close()


def _check_votes_path(votes: Path) -> None:
    """Refuse a vote database path that can never be written (a folder, or in a folder that cannot be
    created or written): its votes could not even wait in the side file. A locked or damaged database
    is not refused here: the page reports it and the votes wait (see :class:`VoteStore`)."""
    if votes.is_dir():
        raise OutputError(
            votes,
            "is a folder, not a vote database",
            "pass votes=FILE.db, a file it creates if missing",
            params=["votes"],
        )
    folder = votes.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            votes,
            f"its folder cannot be created ({e.strerror or e})",
            "pass votes=FILE.db in a writable folder",
            params=["votes"],
        ) from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            votes, "its folder is not writable", "pass votes=FILE.db in a writable folder", params=["votes"]
        )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


__all__ = ["build", "serve", "CSS", "MODELS"]
