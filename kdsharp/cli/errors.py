"""Library errors in command-line words.

The library writes the settings it complains about as ``name=value`` and lists the names in
:attr:`kdsharp.errors.KdsharpError.params`; here they become the invoked command's flags:
``tile=64`` -> ``--tile 64``, ``overwrite=True`` -> ``--overwrite``. Names the command does not
have stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from kdsharp.errors import KdsharpError

# library parameter -> the command's parameter where the names differ
_ALIASES = {"preset": "encoder_preset", "out_dir": "out", "half": "fp16", "path": "video_path"}
# a value: quoted, or up to whitespace / a closing bracket / a separator
_VALUE = r"""('[^']*'|"[^"]*"|[^\s,;)]+)"""


def _command_options(args: Sequence[str], root: Any) -> dict[str, tuple[str, bool]]:
    """{parameter name: (long flag, is a bare flag)} of the command of ``root`` (a click group) that ``args`` invoke."""
    cmd = root
    for token in args:
        sub = getattr(cmd, "commands", {}).get(token)
        if sub is None:
            if not token.startswith("-"):
                break
            continue
        cmd = sub
    options: dict[str, tuple[str, bool]] = {}
    for p in getattr(cmd, "params", []):
        opts = list(getattr(p, "opts", []))
        flags = [o for o in opts if o.startswith("--")] or opts
        if p.name and flags:
            options[p.name] = (max(flags, key=len), bool(getattr(p, "is_flag", False)))
    return options


def flag_words(message: str, params: Sequence[str], options: dict[str, tuple[str, bool]]) -> str:
    """``message`` with each ``name=value`` of ``params`` written as the matching flag of ``options``."""
    for name in params:
        option = options.get(name) or options.get(_ALIASES.get(name, ""))
        if option is None:
            continue
        flag, bare = option

        def repl(m: re.Match, flag: str = flag, bare: bool = bare) -> str:
            value = m.group(1).strip("'\"")
            return flag if bare else f"{flag} {value}"

        message = re.sub(rf"(?<![\w.-]){re.escape(name)}={_VALUE}", repl, message)
    return message


def format_error(e: BaseException, args: Sequence[str] = (), root: Any = None) -> str:
    """The one line printed for ``e`` by the command of ``root`` (the app's click group) that ``args`` invoke."""
    text = str(e)
    params = getattr(e, "params", ()) if isinstance(e, KdsharpError) else ()
    if not params or root is None:
        return text
    try:
        return flag_words(text, params, _command_options(args, root))
    except Exception:  # noqa: BLE001 - the message as the library wrote it beats no message
        return text
