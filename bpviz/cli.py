"""The `bpviz` command: `bpviz check FILE` in the terminal, `bpviz [FILE]` for the window.

Wiring only: parse, call the engine or the window, turn the outcome into an exit
code (0 ran clean, 1 ran and found errors, 2 could not run). `bpviz check`
never imports Qt, so it works on a machine without a display or PySide6.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bpviz import __version__
from bpviz.engine.user_error import UserCodeError

EXIT_CLEAN, EXIT_FOUND_ERRORS, EXIT_COULD_NOT_RUN = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m bpviz`; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["check"]:
            return run_check(check_parser().parse_args(argv[1:]))
        args = gui_parser().parse_args(argv)
        if args.install_desktop:
            from bpviz.gui.desktop_entry import main as install_desktop

            return install_desktop()
        return run_gui(args)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_COULD_NOT_RUN


def input_shape(text: str) -> tuple[int, ...]:
    """Parse `3,32,32` into (3, 32, 32), the shape of one sample without the batch dimension."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes separated by commas, like 3,32,32 or 784; got {text!r}")
    return shape


def screen_size(text: str) -> tuple[int, int]:
    """Parse `1280x800` into (1280, 800)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 320 for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, like 1280x800; got {text!r}")
    return int(parts[0]), int(parts[1])


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
        epilog="exit status: 0 no error found, 1 errors found, 2 the file could not be run",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="experiment file (.py with build()) or pickled model (.pt/.pth)")
    parser.add_argument("--steps", type=positive_int, default=20, help="training steps to run (default 20)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the report as JSON to PATH")
    parser.add_argument("--verbose", action="store_true", help="print the full traceback when the file fails")
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
    parser.add_argument("--screen", metavar="WxH", type=screen_size,
                        help="fit the window to a screen of this size instead of the real one (e.g. 1280x800, for screenshots)")
    parser.add_argument("--version", action="version", version=f"bpviz {__version__}")
    parser.add_argument("--install-desktop", action="store_true",
                        help="add bpviz to your applications menu (entry, icon, .bpviz file type), then exit")
    return parser


def run_check(args: argparse.Namespace) -> int:
    """Load, train `args.steps` steps, validate once, print the summary; exit 2 with a short message on user errors."""
    from bpviz.engine.load.experiment import load_experiment
    from bpviz.engine.session.stepper import Stepper
    from bpviz.engine.report.text import format_report

    stepper = None
    failure: UserCodeError | None = None
    try:
        experiment = load_experiment(
            args.file, trust=args.trust, weights=args.weights, input_shape=args.input_shape, seed=args.seed
        )
        stepper = Stepper(experiment)
        for _ in range(args.steps):
            stepper.step()
        if experiment.val_data is not None:
            stepper.validate()
    except UserCodeError as error:
        failure = error
    finally:
        if stepper is not None:
            stepper.close()
    report = stepper.report() if stepper is not None and stepper.step_index else None
    if report is not None:  # what was recorded before a failure is kept, on screen and in the JSON
        if failure is not None:
            report["error"] = {"what": failure.what, "where": failure.where, "layer": failure.layer, "why": failure.why}
        print(format_report(report), end="")
        if args.json is not None and not _write_json(args.json, report):
            return EXIT_COULD_NOT_RUN
    if failure is not None:
        print(failure.summary(), file=sys.stderr)
        if args.verbose and failure.details:
            print("\n" + failure.details.rstrip(), file=sys.stderr)
        elif failure.details:
            print("  (run with --verbose for the full traceback)", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    found_errors = any(finding["severity"] == "error" for finding in report["findings"])
    return EXIT_FOUND_ERRORS if found_errors else EXIT_CLEAN


def _write_json(path: Path, report: dict) -> bool:
    try:
        path.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as error:
        print(f"cannot write the report to {path}: {error.strerror or error}", file=sys.stderr)
        return False
    return True


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
