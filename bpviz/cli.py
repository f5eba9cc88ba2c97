"""The `bpviz` command: `bpviz check FILE` in the terminal, `bpviz [FILE]` for the window.

Wiring only: parse, call the engine or the window, turn the outcome into an exit
code (0 ran clean, 1 ran and found errors, 2 could not run). `bpviz check`
never imports Qt, so it works on a machine without a display or PySide6.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bpviz.engine.load.shapes import parse_shape
from bpviz.engine.session.check import EXIT_COULD_NOT_RUN, CheckRequest, CheckRun
from bpviz.engine.session.process_exit import end_process


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m bpviz`; returns the exit code.

    bpviz's own arguments are parsed before any user code runs, so only argparse's own exit (--help, a usage
    error) is caught here; a sys.exit() in the user's file is the file's failure (see engine/session/check.py).
    Run as the process's command (no `argv`), `bpviz check` ends the process once its report is out, so a
    thread the user's code left running cannot keep it alive.
    """
    command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        try:
            args = check_parser().parse_args(argv[1:])
        except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
            return _argparse_code(exit_)
        code = run_check(args)
        return end_process(code) if command_line else code
    try:
        args = gui_parser().parse_args(argv)
    except SystemExit as exit_:
        return _argparse_code(exit_)
    return run_gui(args)


def _argparse_code(exit_: SystemExit) -> int:
    return exit_.code if isinstance(exit_.code, int) else EXIT_COULD_NOT_RUN


def positive_seconds(text: str) -> float:
    """A time limit: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def input_shape(text: str) -> tuple[int, ...]:
    """Parse `3,32,32` into (3, 32, 32), the shape of one sample without the batch dimension."""
    shape = parse_shape(text)
    if shape is None:
        raise argparse.ArgumentTypeError(f"expected positive sizes separated by commas, like 3,32,32 or 784; got {text!r}")
    return shape


def positive_int(text: str) -> int:
    """A step count: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _loading_options() -> argparse.ArgumentParser:
    """Options both commands need to load a file the same way."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--trust", action="store_true", help="allow unpickling a whole-model .pt/.pth file (runs code from it)")
    parent.add_argument("--weights", metavar="CKPT", type=Path, help="state-dict checkpoint to load into the model (weights_only)")
    parent.add_argument("--input-shape", metavar="D1,D2,...", type=input_shape, help="shape of one sample, for a pickled model")
    parent.add_argument("--seed", type=int, default=0, help="random seed for building the experiment (default 0)")
    return parent


def check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpviz check",
        parents=[_loading_options()],
        description="Train FILE for a few steps without a window; print each layer's state and the findings.",
        epilog="exit status: 0 no error found, 1 errors found, 2 the file could not be run (it failed, called "
        "sys.exit(), or ran past --timeout), 128+N ended by signal N (130 for Ctrl+C); the steps run so far "
        "are reported in every case",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="experiment file (.py with build()) or pickled model (.pt/.pth)")
    parser.add_argument("--steps", type=positive_int, default=20, help="training steps to run (default 20)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the report as JSON to PATH")
    parser.add_argument("--verbose", action="store_true", help="print the full traceback when the file fails")
    parser.add_argument("--timeout", metavar="SECONDS", type=positive_seconds,
                        help="stop the run after SECONDS and report the steps done (exit 2)")
    return parser


def gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpviz",
        parents=[_loading_options()],
        description="Open the visual backpropagation debugger, optionally on FILE.",
        epilog="Without a window: bpviz check FILE [--steps N] [--json PATH] (see bpviz check --help).",
    )
    parser.add_argument("file", metavar="FILE", type=Path, nargs="?", help="experiment file or pickled model to open")
    parser.add_argument("--steps", type=positive_int, help="run this many steps once the file is loaded")
    parser.add_argument("--screenshot", metavar="PATH", type=Path, help="save a PNG of the window after --steps, then quit")
    return parser


def run_check(args: argparse.Namespace) -> int:
    """Load, train `args.steps` steps, validate once, print the summary; see engine/session/check.py."""
    request = CheckRequest(
        file=args.file, steps=args.steps, trust=args.trust, weights=args.weights, input_shape=args.input_shape,
        seed=args.seed, json=args.json, verbose=args.verbose, timeout=args.timeout,
    )
    return CheckRun(request).run()


def run_gui(args: argparse.Namespace) -> int:
    """Hand the parsed arguments to the window; Qt is imported only here."""
    try:
        from bpviz.gui.app import main as gui_main
    except ImportError as error:
        print(
            f"bpviz: the window cannot start ({error}).\n"
            "It needs PySide6-Essentials and pyqtgraph (pip install -e .). "
            "`bpviz check FILE` works without them.",
            file=sys.stderr,
        )
        return EXIT_COULD_NOT_RUN
    return gui_main(args)
