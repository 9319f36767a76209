"""The ``phantom`` command: a thin shell over the library. One module per subcommand (as
lm-eval's ``_cli/``); each adds its parser and, when run, parses its options, calls its layer's
face (:mod:`phantom.workers`, :mod:`phantom.orchestrator`, :mod:`phantom.analysis`,
:mod:`phantom.models`) and prints what came back. Heavy imports happen inside the command's
function, so ``phantom --help`` and ``phantom sweep validate`` start fast.

Each module in COMMANDS defines ``register(subparsers)``, which adds its parser(s) and sets
``run=<function(args) -> int | None>`` as a default. A user's mistake is one line on stderr and
a non-zero exit, never a traceback (:func:`main`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from phantom.errors import PhantomError
from phantom.release import __version__

COMMANDS = [
    "phantom.cli.trial",  # trial
    "phantom.cli.sentences",  # sentences check
    "phantom.cli.models",  # models [install]
    "phantom.cli.geometry",  # geometry, predict
    "phantom.cli.sweep",  # sweep run|resume|status|compact|validate|init, sweeps
    "phantom.cli.query",  # query, analyze
]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other user error; and a
    description may be a function (``describe=``), called only when the help is shown, so that
    building the parser imports nothing a command does not run."""

    def __init__(self, *args, describe=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._describe = describe

    def format_help(self) -> str:  # noqa: D102
        if self._describe is not None:
            self.description, self._describe = self._describe(), None
        return super().format_help()

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="phantom",
        description="Run, resume and analyse the phantom-transitions fine-tuning study.",
    )
    parser.add_argument("--version", action="version", version=f"phantom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def fail(message: str, code: int = 2) -> int:
    from phantom.cloud import redact

    print(f"phantom: error: {redact(message)}", file=sys.stderr)  # a URI's credentials never shown
    return code


def main(argv: list[str] | None = None) -> int:
    # library deprecation chatter is not for users; our own warnings still show
    for module in ("transformers", "peft", "accelerate", "torch", "ray"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        code = args.run(args)
    except PhantomError as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception:  # a bug: its traceback, with any credential a URI held redacted
        import traceback

        from phantom.cloud import redact

        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1
    return int(code or 0)
