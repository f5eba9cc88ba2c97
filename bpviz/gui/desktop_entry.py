"""`bpviz --install-desktop`: a menu entry, its icon and the .bpviz run-file type for the current user.

The entry's Exec is the absolute path of the bpviz that runs now (its venv's
script, or this interpreter with -m bpviz): a desktop menu does not see a venv's
PATH, so a bare `bpviz` would not start. The icon and the MIME type description
ship inside the package, so a non-editable install has them too. No Qt here:
this runs from the command line, before any window.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent / "resources"
ICON = RESOURCES / "bpviz.svg"
MIME_XML = RESOURCES / "bpviz-run.xml"
RUN_MIME_TYPE = "application/x-bpviz-run"


def data_home() -> Path:
    """$XDG_DATA_HOME, or ~/.local/share: where per-user menu entries, icons and MIME types live."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def exec_command() -> str:
    """How a desktop launches this bpviz: the console script beside this interpreter, else `python -m bpviz`."""
    script = Path(sys.executable).parent / "bpviz"
    parts = [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "bpviz"]
    return " ".join(_quoted(part) for part in parts)


def _quoted(arg: str) -> str:
    """An Exec argument, quoted as the Desktop Entry spec asks when it has spaces or reserved characters."""
    if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def desktop_entry(command: str) -> str:
    """The text of bpviz.desktop for `command` (absolute)."""
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Name=bpviz",
            "GenericName=Backpropagation Debugger",
            "Comment=Watch activations and gradients of a PyTorch model layer by layer, and see what is wrong",
            f"Exec={command} %f",
            "Icon=bpviz",
            "Terminal=false",
            "Categories=Development;Debugger;",
            f"MimeType={RUN_MIME_TYPE};",
            "Keywords=pytorch;neural;network;gradient;backpropagation;debugger;",
            "StartupWMClass=bpviz",
            "",
        ]
    )


def install(home: Path | None = None) -> list[Path]:
    """Write the entry, icon and MIME type under `home` (the user's data folder); the files written."""
    home = home if home is not None else data_home()
    targets = {
        home / "applications" / "bpviz.desktop": desktop_entry(exec_command()),
        home / "icons" / "hicolor" / "scalable" / "apps" / "bpviz.svg": ICON,
        home / "mime" / "packages" / "bpviz-run.xml": MIME_XML,
    }
    for target, content in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")  # atomic: a menu never reads half a file
        if isinstance(content, Path):
            shutil.copyfile(content, partial)
        else:
            partial.write_text(content, encoding="utf-8")
        partial.replace(target)
    _refresh(["update-mime-database", str(home / "mime")])
    _refresh(["update-desktop-database", str(home / "applications")])
    return list(targets)


def _refresh(command: list[str]) -> None:
    """Rebuild a desktop cache when its tool is installed; without it the desktop rescans later."""
    if shutil.which(command[0]) is None:
        return
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    """Install and say what was written; exit status 0, or 2 when a file could not be written."""
    try:
        written = install()
    except OSError as error:
        print(f"bpviz: cannot install the desktop entry: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print(f"bpviz is in your applications menu; it starts {exec_command()}")
    return 0
