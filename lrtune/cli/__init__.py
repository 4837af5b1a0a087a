"""The ``lrtune`` command line: thin shells over the library.

Each sub-command lives in its own module of this package with two functions,
``add_parser(subparsers)`` (declare the arguments) and ``run(args) -> int``; the module is
listed in :data:`COMMANDS`.  Any ``ValueError`` (or ``OSError``, ``KeyError``, ``MemoryError``, ``OverflowError``) raised by a command becomes
one line on stderr starting with ``lrtune: error:`` and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Sequence

from lrtune.laws import FitWarning

#: sub-command name -> module (relative to this package) that implements it
COMMANDS: dict[str, str] = {
    "fit": "._fit",
    "predict": "._predict",
    "plot": "._plot",
    "demo": "._demo",
}
# further commands register here when their modules exist
for _name, _mod in (("suggest", "._suggest"), ("transfer", "._transfer"), ("runs", "._runs")):
    if importlib.util.find_spec(_mod, __name__) is not None:
        COMMANDS[_name] = _mod


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        self.exit(2, f"lrtune: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from lrtune import __version__

    parser = _Parser(prog="lrtune", description="Predict loss curves from learning-rate schedules.")
    parser.add_argument("--version", action="version", version=f"lrtune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, mod in COMMANDS.items():
        importlib.import_module(mod, __name__).add_parser(sub)
    return parser


def check_output(path: str, flag: str) -> None:
    """Refuse an output file whose folder is missing or cannot be written, before the
    command computes anything."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a folder; give a file name")
    if os.path.exists(path):  # an existing file (or /dev/null) is written in place
        if not os.access(path, os.W_OK):
            raise ValueError(f"{flag} {path}: the file cannot be written")
        return
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path}: there is no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{flag} {path}: the folder {folder} cannot be written")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """lrtune's own warnings as one line each, like its errors."""
    print(f"lrtune: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("always", FitWarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        for flag in ("output", "plot"):  # a file to write: its folder is checked before any work
            if isinstance(getattr(args, flag, None), str):
                check_output(getattr(args, flag), "-o" if flag == "output" else "--plot")
        return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader stopped early (| head): nothing more to say
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 1
    except (ValueError, OSError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"lrtune: error: {msg}", file=sys.stderr)
        return 2
    except (MemoryError, OverflowError) as e:  # e.g. a step or horizon of 1e12
        what = "not enough memory" if isinstance(e, MemoryError) else "a number too large"
        print(f"lrtune: error: {what} ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}); "
              f"is a step or a horizon far too large?", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("lrtune: error: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
