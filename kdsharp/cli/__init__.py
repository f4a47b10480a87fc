"""The ``kdsharp`` command line: a thin typer app.

Each command lives in a small module of this package that parses its options, calls one
function of the library and prints the result. Errors meant for the user
(:class:`kdsharp.errors.KdsharpError`) print as one line and exit non-zero; ``--debug`` (anywhere
on the command line) shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import signal
import sys
import threading
import traceback

import typer
from typer.core import TyperCommand, TyperGroup

from kdsharp import __version__
from kdsharp.cli import state
from kdsharp.console import error
from kdsharp.errors import KdsharpError, Terminated


class _FlagsWithoutMetavar:
    """Help shows boolean flags (``--overwrite``) bare: typer >= 0.20 prints a ``<bool>`` value
    placeholder after them, which reads as if ``--overwrite true`` were the way to pass one."""

    def get_params(self, ctx):
        params = super().get_params(ctx)  # type: ignore[misc]  # a mixin: the typer class is next in the MRO
        for p in params:
            if getattr(p, "is_bool_flag", False) and p.metavar is None:
                p.metavar = ""
        return params


def reflow_help(text: str | None) -> str | None:
    """``text`` (a command's docstring) with the line breaks inside each paragraph joined: typer
    >= 0.29 keeps them, so a docstring's lines broke mid-sentence in a narrow terminal. Paragraphs
    that are laid out by hand (click's ``\\b`` marker, indented or ``-`` lines) are kept."""
    if not text:
        return text
    head, sep, tail = inspect.cleandoc(text).partition("\f")

    def joined(par: str) -> str:
        lines = par.splitlines()
        if par.startswith("\b") or any(ln[:1] in (" ", "-", "*") for ln in lines[1:]):
            return par
        return " ".join(ln.strip() for ln in lines)

    return "\n\n".join(joined(par) for par in head.split("\n\n")) + sep + tail


class _ReflowedHelp:
    """Help paragraphs reflow to the terminal's width (see :func:`reflow_help`)."""

    def __init__(self, *args, help: str | None = None, **kwargs):
        super().__init__(*args, help=reflow_help(help), **kwargs)  # type: ignore[call-arg]  # a mixin: typer's class is next


class _Command(_ReflowedHelp, _FlagsWithoutMetavar, TyperCommand):
    """Every kdsharp command: typer's, with bare boolean flags and reflowed paragraphs in --help."""


class _Group(_ReflowedHelp, _FlagsWithoutMetavar, TyperGroup):
    """Every kdsharp command group: typer's, with bare boolean flags and reflowed paragraphs in --help."""


app = typer.Typer(
    name="kdsharp",
    cls=_Group,
    help="Make blurry, compressed video-call footage sharp again, in real time.\n\n"
    "Start with `kdsharp demo`. Every command has --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        print(f"kdsharp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    """Make blurry, compressed video-call footage sharp again, in real time."""


def _register_commands() -> None:
    # Imported here so that `kdsharp --help` lists every command; each module adds its own.
    from kdsharp.cli import app_cmds, data_cmds, eval_cmds, infer_cmds, models_cmds, train_cmds

    for mod in (infer_cmds, data_cmds, models_cmds, train_cmds, eval_cmds, app_cmds):
        mod.register(app)
    _use_kdsharp_classes(app)


def _use_kdsharp_classes(typer_app: typer.Typer) -> None:
    """Give every command and sub-group of ``typer_app`` the kdsharp classes (unless one is set)."""
    for info in typer_app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = _Command
    for group in typer_app.registered_groups:
        sub = group.typer_instance
        if sub is not None:
            if not isinstance(sub.info.cls, type) or sub.info.cls is TyperGroup:
                sub.info.cls = _Group
            _use_kdsharp_classes(sub)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    state.DEBUG = "--debug" in args
    args = [a for a in args if a != "--debug"]
    state.ARGS = args
    state.ROOT_COMMAND = functools.cache(lambda: typer.main.get_command(app))  # built once, on the first error
    from kdsharp.infer.threads import keep_freed_memory, passive_waiting

    passive_waiting()  # before torch is imported: OpenMP threads must not spin on shared cores
    keep_freed_memory()  # no page faults on every layer's fresh tensor
    with _signals_as_interrupts() as caught:
        rc = _main(args)
    state.SIGNALLED = bool(caught)
    # typer turns a KeyboardInterrupt inside a command into a silent exit code 130
    return _interrupted(caught[-1]) if rc == 130 and caught else rc


@contextlib.contextmanager
def _signals_as_interrupts():
    """While a command runs, Ctrl-C (SIGINT) raises KeyboardInterrupt and SIGTERM (``kill``, ``timeout``)
    raises :class:`Terminated`, in the main thread, so both get the same clean-up (no temporary file
    left, ``live`` finishes its recording); yields the list of signals caught. A SIGINT that the
    shell set to be ignored (a background job) stays ignored."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, frame):
        caught.append(signum)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    wanted = [signal.SIGTERM] + (
        [signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else []
    )
    previous = {sig: signal.signal(sig, handler) for sig in wanted}
    try:
        yield caught
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def _interrupted(e: BaseException | int | None) -> int:
    """Ctrl-C: 'interrupted', exit 130; SIGTERM: 'terminated', exit 143 (128 + the signal number)."""
    if isinstance(e, Terminated) or e == signal.SIGTERM:
        error("terminated (SIGTERM)")
        return 128 + signal.SIGTERM
    error("interrupted")
    return 130


def _main(args: list[str]) -> int:
    try:
        rc = app(args=args, prog_name="kdsharp", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except KdsharpError as e:
        if state.debug_enabled():
            traceback.print_exc()
        error(state.error_text(e))
        return e.exit_code
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except SystemExit as e:  # typer.Exit / sys.exit inside a command
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    except Exception as e:  # noqa: BLE001 - click usage errors and anything unexpected: reported, not lost
        exits, aborts, usage = _click_exception_types()
        if isinstance(e, exits):
            return int(getattr(e, "exit_code", 0) or 0)
        if isinstance(e, aborts):  # click turns a KeyboardInterrupt into Abort (the interrupt as its cause)
            return _interrupted(e.__cause__)
        if isinstance(e, usage):  # bad option, missing argument, no arguments (help shown)
            e.show()
            return int(getattr(e, "exit_code", 2))
        if state.debug_enabled():
            traceback.print_exc()
        error(f"{type(e).__name__}: {e} (run with --debug for the traceback)")
        return 1


def _click_exception_types() -> tuple[tuple, tuple, tuple]:
    """(exit, abort, usage-error) exception classes that typer raises: those of its own copy of
    click (typer >= 0.20 vendors click and no longer installs it), else click's (older typer)."""
    try:
        exceptions = importlib.import_module("typer._click.exceptions")
    except ImportError:  # typer < 0.20 depends on click and raises click's classes
        exceptions = importlib.import_module("click.exceptions")
    exits = (typer.Exit, getattr(exceptions, "Exit", typer.Exit))
    aborts = (typer.Abort, getattr(exceptions, "Abort", typer.Abort))
    return exits, aborts, (exceptions.ClickException,)


def run() -> None:
    """``sys.exit(main())`` for the console script.

    After Ctrl-C or SIGTERM the process ends at once with the exit code, once the command's own
    clean-up is done (temporary files removed, a live recording finished): a signal that arrives
    while torch's or FFmpeg's worker threads are busy can make the interpreter's teardown abort
    ("terminate called without an active exception", exit code 134 instead of 130).
    """
    rc = main()
    if state.SIGNALLED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)
