"""The Help menu's pages: the keyboard shortcuts, how to read the plots, and About with the version.

The shortcut list is read from the window's own actions, so it cannot drift from
what the keys really do.
"""

from __future__ import annotations

import platform

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMainWindow, QMessageBox, QTextBrowser, QVBoxLayout

import bpviz
from bpviz.gui import theme

HOW_TO_READ = """
<h3>How to read these plots</h3>
<p><b>Layers</b> (left): one row per layer, in forward order. A red dot or a red number marks a problem;
select a row and every plot follows that layer.</p>
<p><b>Activations &amp; gradients</b>: the histogram is the selected layer's output at the latest step
(the previous step faint behind it). Below, the same histogram over time: x is the step, y the value,
brightness how many values fell there. A healthy layer keeps a spread; a band collapsing onto 0 means
silent units, a band drifting off means growing values.</p>
<p><b>Dead units</b>: how many units of a ReLU-family layer gave 0 for every sample of a step, over time,
and a map of every unit (dark = silent) per step.</p>
<p><b>Gradient flow</b>: the size of the gradient arriving at each layer, ‖∂L/∂out‖, input to output, on a
log scale (each label is a power of ten). Bars falling by decades towards the input mean vanishing
gradients; bars growing by decades mean exploding ones. A red bar is NaN or Inf. Below, the same norms
over time: the selected layer in white, the others coloured by depth (dark = input, bright = output).</p>
<p><b>Loss</b>: training loss per step, validation results as points.</p>
<p><b>Findings</b>: what bpviz concluded, with why it matters and what to try. Dashed vertical lines on
the time axes mark the steps where a remedy was applied.</p>
<p><b>Step Into</b> (F11) pauses inside a training step: at each layer's forward, the loss, each layer's
backward and the update, showing the live tensor in the Step panel.</p>
"""


WHEN = "shortcut_when"  # an action's property: when its keys do something, for those that work only then


def shortcuts(window: QMainWindow) -> list[tuple[str, str, str]]:
    """(command, keys, when) of every action of the window that has a shortcut, in the order the actions were
    made; an action with several ("," and Left) lists them all, and `when` says when the keys work where that is
    not always ("" for always): a key that seems to do nothing is the first thing a new user reports."""
    rows = []
    for action in window.findChildren(QAction):
        keys = " or ".join(key.toString(QKeySequence.SequenceFormat.NativeText) for key in action.shortcuts())
        if keys:
            rows.append((action.text().replace("&", "").replace("…", ""), keys, action.property(WHEN) or ""))
    return rows


def shortcuts_html(window: QMainWindow) -> str:
    cells = "".join(
        f"<tr><td style='padding:2px 18px 2px 0'>{name}</td><td style='padding:2px 18px 2px 0'><b>{keys}</b></td>"
        f"<td style='color:{theme.MUTED}'>{when}</td></tr>"
        for name, keys, when in shortcuts(window)
    )
    return f"<h3>Keyboard shortcuts</h3><table>{cells}</table>"


def about_html() -> str:
    import pyqtgraph
    import PySide6
    import torch

    return (
        f"<b>bpviz {bpviz.__version__}</b><br>A visual backpropagation debugger for PyTorch.<br><br>"
        f"Python {platform.python_version()} · torch {torch.__version__} · PySide6 {PySide6.__version__}"
        f" · pyqtgraph {pyqtgraph.__version__}<br><br>Without a window: <tt>bpviz check FILE</tt>"
    )


def show_page(window: QMainWindow, title: str, html: str) -> QDialog:
    """A small non-modal window with `html`, so it can stay open beside the debugger."""
    dialog = QDialog(window)
    dialog.setWindowTitle(title)
    text = QTextBrowser()
    text.setHtml(html)
    text.setOpenExternalLinks(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.resize(560, 520)
    dialog.show()
    return dialog


def show_shortcuts(window: QMainWindow) -> QDialog:
    return show_page(window, "Keyboard shortcuts — bpviz", shortcuts_html(window))


def show_how_to_read(window: QMainWindow) -> QDialog:
    return show_page(window, "How to read these plots — bpviz", HOW_TO_READ)


def show_about(window: QMainWindow) -> None:
    QMessageBox.about(window, "About bpviz", about_html())
