"""sys.exit() in an experiment file is the file's failure in the window too: shown, and the window stays usable."""

from __future__ import annotations

from tests.gui.window_driver import LOAD_MS, SAMPLES, make_window, open_file


def test_sys_exit_in_build_is_shown_and_the_next_file_loads(qtbot, tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\n\ndef build():\n    sys.exit(0)\n")
    window = make_window(qtbot, tmp_path / "settings.ini")
    window.code_trust.trusted.trust_for_session(path)
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as failed:
        assert window.open_path(path)
    assert failed.args[0].what == "build() called sys.exit(0) at exits.py:4"
    assert window.error_panel.isVisible() and window.error_panel.title.text() == failed.args[0].what
    open_file(qtbot, window, SAMPLES["dying_relu"])
