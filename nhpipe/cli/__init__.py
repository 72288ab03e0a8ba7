"""The ``nhpipe`` command line.  ``main(argv) -> int``; nothing imports this module.

User errors print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import warnings

from .. import __version__
from ..errors import InputError
from . import _maps, _training

EXIT_USAGE = 2


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps prose paragraphs to the terminal; keeps indented lines (examples) as written."""

    def _fill_text(self, text, width, indent):
        import textwrap

        paragraphs = []
        for block in text.split("\n\n"):
            lines = block.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or block.startswith(" "):
                paragraphs.append(textwrap.indent(block, indent))
            else:
                paragraphs.append(textwrap.fill(" ".join(lines), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (InputError) instead of exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise InputError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nhpipe",
        description="Maps of the mass-weighted mean density <n_H>_m along the line of sight, "
        "with uncertainties, from Herschel column-density maps.",
    )
    parser.add_argument("--version", action="version", version=f"nhpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log the time of each stage (load, regrid, infer, map back)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for add in (_maps.add_run, _maps.add_catalog, _maps.add_batch,
                _training.add_make_dataset, _training.add_describe_dataset,
                _training.add_train, _training.add_calibrate, _training.add_evaluate):
        add(sub)
    return parser


#: Python parameters whose flag is not simply ``--`` + the name with dashes.
_FLAG_ALIASES = {"model_name": "--model", "beam_arcsec": "--beam", "mdr=False": "--no-mdr",
                 "exclude_comments": "--exclude-comment", "overwrite=True": "--overwrite"}


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """Rewrite the Python parameters named in a library message (```samples```,
    ```distance='400pc'```, ```columns['density']```; see :mod:`nhpipe.errors`) as the
    flags of this command line; names that are no flag of ``parser`` only lose their
    backticks."""
    flags = {opt for action in _all_actions(parser) for opt in action.option_strings}

    def flag(match: re.Match) -> str:
        name, key, value = match.group("name", "key", "value")
        if key is not None:
            name = f"col_{key}"
        whole = f"{name}={value}" if value is not None else name
        option = _FLAG_ALIASES.get(whole) or _FLAG_ALIASES.get(name) or \
            "--" + name.replace("_", "-")
        if option not in flags:
            return match.group(0)[1:-1]
        if value is None or whole in _FLAG_ALIASES:
            return option
        return f"{option} {value.strip(chr(39))}"

    return re.sub(r"`(?P<name>\w+)(?:\['(?P<key>\w+)'\])?(?:=(?P<value>[^`]+))?`", flag,
                  message)


def _all_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Warnings are collected and printed (one line each, duplicates once) when the command
    succeeds; a refusal prints its one line alone, so a user error is always exactly one
    line on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "nhpipe " + shlex.join(argv)
    caught: list[str] = []
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: caught.append(
            (str(message).strip().splitlines() or [""])[0])
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
            if args.verbose:
                import logging

                logging.basicConfig(level=logging.INFO, format="nhpipe: %(message)s")
            if getattr(args, "handler", None) is None:
                parser.print_help()
                return EXIT_USAGE
            threads = getattr(args, "threads", None)
            if threads is not None and threads < 1:
                raise InputError(f"--threads must be at least 1, got {threads}")
            if threads is not None and args.command != "batch":
                import torch

                torch.set_num_threads(threads)
            status = args.handler(args, command)
        except InputError as exc:
            print(f"nhpipe: error: {as_flags(str(exc), parser)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("nhpipe: interrupted", file=sys.stderr)
            return 130
    for message in dict.fromkeys(caught):
        print(f"nhpipe: warning: {as_flags(message, parser)}", file=sys.stderr)
    return status


def entry_point() -> None:
    sys.exit(main())
