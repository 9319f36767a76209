"""The ``phantom`` command. One module per subcommand; heavy imports happen inside the
command's function, so ``phantom --help`` and ``phantom sweep validate`` start fast.

Each module listed in COMMANDS defines ``register(subparsers)``, which adds its parser(s) and
sets ``run=<function(args) -> int | None>`` as a default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from phantom.release import __version__
from phantom.errors import PhantomError

COMMANDS = [
    "workers.cli",  # trial, sentences, models, geometry, predict
    "orchestrator.cli",  # sweep run|resume|status|validate
    "analysis.commands.cli",  # query, analyze
]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other user error."""

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
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a package of this project not written yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def fail(message: str, code: int = 2) -> int:
    print(f"phantom: error: {message}", file=sys.stderr)
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
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
