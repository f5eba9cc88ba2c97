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

from bpviz.engine.load.shapes import parse_shape
from bpviz.engine.observe.levels import LEVELS
from bpviz.engine.session.check import EXIT_CLEAN, EXIT_COULD_NOT_RUN, EXIT_FOUND_ERRORS, CheckRequest, CheckRun
from bpviz.engine.session.process_exit import end_process, exit_now
from bpviz.engine.user_error import UserCodeError
from bpviz.version import __version__


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
    if argv[:1] == ["compare"]:
        try:
            args = compare_parser().parse_args(argv[1:])
        except SystemExit as exit_:
            return _argparse_code(exit_)
        return run_compare(args)
    try:
        args = gui_parser().parse_args(argv)
    except SystemExit as exit_:
        return _argparse_code(exit_)
    if args.install_desktop:
        from bpviz.gui.desktop_entry import main as install_desktop

        return install_desktop()
    code = run_gui(args)
    return exit_now(code) if command_line else code


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


def screen_size(text: str) -> tuple[int, int]:
    """Parse `1280x800` into (1280, 800)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 320 for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, like 1280x800; got {text!r}")
    return int(parts[0]), int(parts[1])


def input_shape(text: str) -> tuple[int, ...]:
    """Parse `3,32,32` into (3, 32, 32), the shape of one sample without the batch dimension."""
    shape = parse_shape(text)
    if shape is None:
        raise argparse.ArgumentTypeError(
            f"expected positive sizes separated by commas, like 3,32,32 or 784; got {text!r}"
        )
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
    parent.add_argument(
        "--trust", action="store_true", help="allow unpickling a whole-model .pt/.pth file (runs code from it)"
    )
    parent.add_argument(
        "--weights", metavar="CKPT", type=Path, help="state-dict checkpoint to load into the model (weights_only)"
    )
    parent.add_argument(
        "--input-shape", metavar="D1,D2,...", type=input_shape, help="shape of one sample, for a pickled model"
    )
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
    parser.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        help="experiment file (.py with build()), pickled model (.pt/.pth), or a run file (.bpviz) to judge again",
    )
    parser.add_argument("--steps", type=positive_int, default=20, help="training steps to run (default 20)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the report as JSON to PATH")
    parser.add_argument(
        "--record",
        metavar="PATH",  # text, not Path: a trailing slash means a folder
        help="record every step to this run file (or a new dated file in this folder, with a trailing /)",
    )
    parser.add_argument("--config", metavar="JSON", type=Path, help="thresholds and settings from a JSON object file")
    parser.add_argument(
        "--set",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        dest="settings",
        help="one setting, e.g. --set dead_warning=0.2 (repeatable; after --config)",
    )
    parser.add_argument("--verbose", action="store_true", help="print the full traceback when the file fails")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds,
        help="stop the run after SECONDS and report the steps done (exit 2)",
    )
    parser.add_argument(
        "--level",
        choices=LEVELS,
        help="what to measure: economy (the default: cheap) or full (every statistic every step)",
    )
    return parser


def compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpviz compare",
        description="Compare two run files, or two branches of one: the first step and layer where they diverge, "
        "and the findings one lacks.",
        epilog="exit status: 0 no difference, 1 the runs differ, 2 a file could not be read",
    )
    parser.add_argument("a", metavar="A.bpviz", type=Path)
    parser.add_argument(
        "b", metavar="B.bpviz", type=Path, nargs="?", help="without it, compare two branches of A (a rewound run)"
    )
    parser.add_argument(
        "--branch",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="the branch compared (once: of both files, or of A against its branch 1; twice: A's, then B's); "
        "by default branch 1, or for one file branch 1 against its latest branch",
    )
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance for statistics (default 1e-6)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the comparison as JSON to PATH")
    return parser


def gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpviz",
        parents=[_loading_options()],
        description="Open the visual backpropagation debugger, optionally on FILE.",
        epilog="Without a window: bpviz check FILE [--steps N] [--json PATH] [--record RUN.bpviz] "
        "(see bpviz check --help); "
        "bpviz check RUN.bpviz judges a recording again; bpviz compare A.bpviz B.bpviz compares two.",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        nargs="?",
        help="experiment file, pickled model or recorded run (.bpviz) to open",
    )
    parser.add_argument("--steps", type=positive_int, help="run this many steps once the file is loaded")
    parser.add_argument(
        "--screenshot", metavar="PATH", type=Path, help="save a PNG of the window after --steps, then quit"
    )
    parser.add_argument(
        "--screen",
        metavar="WxH",
        type=screen_size,
        help="fit the window to a screen of this size, not the real one (e.g. 1280x800, for screenshots)",
    )
    parser.add_argument("--version", action="version", version=f"bpviz {__version__}")
    parser.add_argument(
        "--install-desktop",
        action="store_true",
        help="add bpviz to your applications menu (entry, icon, .bpviz file type), then exit",
    )
    return parser


def run_check(args: argparse.Namespace) -> int:
    """Load, train `args.steps` steps, validate once, print the summary; see engine/session/check.py.

    Given a run file instead, judge the recording again (the same report and exit codes).
    """
    from bpviz.engine.runs.rejudge import is_run_file

    config = _config(args)
    if config is None:
        return EXIT_COULD_NOT_RUN
    if is_run_file(args.file):
        return run_check_recording(args, config)
    request = CheckRequest(
        file=args.file,
        steps=args.steps,
        trust=args.trust,
        weights=args.weights,
        input_shape=args.input_shape,
        seed=args.seed,
        json=args.json,
        verbose=args.verbose,
        timeout=args.timeout,
        config=config,
        record=args.record,
        level=args.level,
    )
    return CheckRun(request).run()


def run_check_recording(args: argparse.Namespace, config) -> int:
    """Judge a run file again under `config`, without training: the same report and exit codes as a live check."""
    from bpviz.engine.runs.rejudge import check_recording

    try:
        report = check_recording(args.file, config)
    except UserCodeError as error:
        print(error.summary(), file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    if not _show_report(report, args.json):
        return EXIT_COULD_NOT_RUN
    return _verdict(report)


def run_compare(args: argparse.Namespace) -> int:
    """Compare two run files; exit like cmp: 0 the same, 1 they differ, 2 could not compare."""
    from bpviz.engine.runs.compare import compare_files, format_comparison

    try:
        result = compare_files(args.a, args.b, rtol=args.rtol, branch=args.branch)
    except ValueError as error:
        print(f"bpviz compare: {error}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    except UserCodeError as error:
        print(error.summary(), file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    print(format_comparison(result), end="")
    if args.json is not None and not _write_json(args.json, result):
        return EXIT_COULD_NOT_RUN
    return EXIT_CLEAN if result["same"] else EXIT_FOUND_ERRORS


def _config(args: argparse.Namespace):
    """The Config from --config and --set (defaults otherwise); None after printing why it is unusable."""
    from bpviz.engine.runs.config_json import config_from_dict, config_from_json

    try:
        config = config_from_json(args.config.read_text()) if args.config is not None else None
        pairs = [item.partition("=") for item in args.settings]
        bad = [item for item, (_, eq, _) in zip(args.settings, pairs) if not eq]
        if bad:
            raise ValueError(f"expected NAME=VALUE, got {bad[0]!r}")
        return config_from_dict({name: _setting(value) for name, _, value in pairs}, config)
    except (OSError, ValueError) as error:
        source = f" in {args.config}" if args.config is not None else ""
        print(f"bpviz check: unusable settings{source}: {error}", file=sys.stderr)
        return None


def _setting(text: str):
    """A --set value: JSON when it parses (numbers, [lo, hi]), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _show_report(report: dict, json_path: Path | None) -> bool:
    from bpviz.engine.report.text import format_report

    print(format_report(report), end="")
    return json_path is None or _write_json(json_path, report)


def _write_json(path: Path, data: dict) -> bool:
    from bpviz.engine.report.write import ReportWriteError, write_report

    try:
        write_report(path, data)
    except ReportWriteError as error:
        print(error, file=sys.stderr)
        return False
    return True


def _verdict(report: dict) -> int:
    found_errors = any(finding["severity"] == "error" for finding in report["findings"])
    return EXIT_FOUND_ERRORS if found_errors else EXIT_CLEAN


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
