"""CLI: ``kdsharp app`` (a local web page to try the models; needs the ``app`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from kdsharp.errors import KdsharpError

DEFAULT_METHODS = "input,unsharp,fast,student,teacher"


def app_command(
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port of the page."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Interface to serve on; 0.0.0.0 makes the page reachable from other machines (only when you mean it).",
    ),
    votes: Path = typer.Option(
        Path("kdsharp-votes.db"),
        "--votes",
        help="SQLite file of the blind-comparison "
        "votes (created if missing; rank them with `kdsharp eval --votes FILE`).",
    ),
    compare: str = typer.Option(
        DEFAULT_METHODS, "--compare", help="Methods the blind comparison draws its pairs from, comma separated."
    ),
    device: str = typer.Option("auto", "--device", help="Where the models run: auto, cpu or cuda."),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", min=1, help="Largest upload accepted, in MB."),
    max_mpx: float = typer.Option(
        50.0,
        "--max-mpx",
        min=0.1,
        help="Largest image accepted, in megapixels (images above 1 Mpx run in 512 px tiles).",
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
):
    """Serve a local web page to try the models on your photos, clips and webcam, with a blind comparison.

    Tabs: Image (before/after slider, PSNR/SSIM against a reference, full-size download), Video,
    Degrade (make a call-like copy and sharpen it), Webcam (fast, live) and Blind comparison (votes
    stored in --votes). Needs the app extra (gradio): pip install "kdsharp\\[app]".

    Example: kdsharp app --port 7860 --votes votes.db
    """
    try:
        import gradio  # noqa: F401
    except ImportError as e:
        raise KdsharpError(
            '`kdsharp app` needs gradio: pip install "kdsharp[app]" (in a checkout: pip install ".[app]")'
        ) from e
    from kdsharp.app.compare import check_methods
    from kdsharp.app.processing import Limits
    from kdsharp.app.ui import serve

    try:
        methods = check_methods(compare.split(","))
    except KdsharpError as e:
        raise KdsharpError(f"--compare {compare}: {e}") from None
    limits = Limits(max_upload_mb=max_upload_mb, max_pixels=int(max_mpx * 1e6))
    serve(
        host=host,
        port=port,
        votes=votes,
        methods=methods,
        device=device,
        limits=limits,
        open_browser=open_browser,
    )


def register(app: typer.Typer) -> None:
    """Add ``app`` to ``app``."""
    app.command("app")(app_command)
