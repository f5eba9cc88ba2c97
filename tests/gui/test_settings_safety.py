"""Settings are data, never code: a settings file holding pickled Python objects is refused unread.

PySide6 unpickles a `@Variant(PySide::PyObjectWrapper...)` value as soon as QSettings parses the file, so a
crafted bpviz.conf would run code when the window starts. The crafted files here are made the way an attacker
would, by PySide6 itself in another process, with a pickle whose unpickling creates a marker file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray

from bpviz.gui.window.settings import Settings, ini_settings

CRAFT = """
import os, sys
from PySide6.QtCore import QSettings

class Payload:
    def __reduce__(self):
        return (open, (sys.argv[2], "w"))  # unpickling creates the marker file

store = QSettings(sys.argv[1], QSettings.Format.IniFormat)
store.setValue("recent/directory", "/home/someone")
for key in sys.argv[3:]:
    store.setValue(key, Payload())
store.sync()
"""


def craft(path: Path, marker: Path, *keys: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(CRAFT), str(path), str(marker), *keys], check=True)
    assert b"PySide::PyObjectWrapper" in path.read_bytes()
    assert not marker.exists()


@pytest.mark.parametrize("key", ["recent/files", "layout/geometry", "files/0123456789abcdef/breakpoints"])
def test_a_pickled_value_is_refused_and_never_unpickled(tmp_path, capsys, key):
    path, marker = tmp_path / "bpviz.conf", tmp_path / "PWNED"
    craft(path, marker, key)
    settings = Settings(ini_settings(path))
    assert settings.recent_files() == []
    assert settings.load_bytes("geometry") is None
    assert settings.store.allKeys() == ["recent/directory"]  # QSettings parses the whole file here
    assert settings.last_directory() == "/home/someone"  # plain values are kept
    assert not marker.exists()
    assert b"@Variant(" not in path.read_bytes()
    assert b"PyObjectWrapper" in (tmp_path / "bpviz.conf.refused").read_bytes()  # kept aside, not lost
    assert capsys.readouterr().err == (
        f"bpviz: ignored 1 setting(s) in {path} that hold pickled Python objects ({key}): bpviz never writes those, "
        "and reading them would run code. They were moved to bpviz.conf.refused.\n"
    )


def test_the_window_starts_on_a_crafted_settings_file_without_running_it(qtbot, tmp_path):
    from bpviz.gui.window.main_window import MainWindow

    path, marker = tmp_path / "bpviz.conf", tmp_path / "PWNED"
    craft(path, marker, "recent/files", "layout/geometry", "layout/state")
    window = MainWindow(settings=Settings(ini_settings(path)))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.settings.recent_files() == []
    assert not marker.exists()


def test_only_plain_values_are_stored(tmp_path):
    settings = Settings(ini_settings(tmp_path / "bpviz.conf"))
    with pytest.raises(TypeError, match="not bytes"):
        settings.save_bytes("geometry", b"raw bytes would be pickled")
    with pytest.raises(TypeError, match="not list"):
        settings.set_file_value(tmp_path / "exp.py", "breakpoints", ["a list would be pickled"])
    experiment = tmp_path / "exp.py"
    experiment.write_text("")
    settings.add_recent(experiment)
    settings.save_bytes("geometry", QByteArray(b"\x01\x02"))
    settings.sync()
    text = (tmp_path / "bpviz.conf").read_text()
    assert "@Variant(" not in text
    assert json.loads(Settings(ini_settings(tmp_path / "bpviz.conf")).store.value("recent/files")) == [
        str(experiment.resolve())
    ]


def test_recent_files_kept_by_an_older_version_are_still_read(tmp_path):
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    first.write_text("")
    second.write_text("")
    old = Settings(ini_settings(tmp_path / "bpviz.conf"))
    old.store.setValue("recent/files", [str(first), str(second)])  # a QSettings string list, as before
    old.store.setValue("recent/one", [str(first)])
    old.sync()
    settings = Settings(ini_settings(tmp_path / "bpviz.conf"))
    assert settings.recent_files() == [first, second]
    assert settings.paths("recent/one") == [first]
