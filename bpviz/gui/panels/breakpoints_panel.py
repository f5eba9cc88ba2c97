"""The Breakpoints panel: conditions that stop a run, each with an on/off box, saved with the file.

It edits plain `Breakpoint` objects and says when the list changed; the
window hands the list to the experiment process (which checks it after every
step of a run) and to the settings. When a run stops at one, the panel
says why in a banner that stays until the next run.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from bpviz.engine.diagnosis import KINDS as FINDING_KINDS
from bpviz.engine.diagnosis.finding import SEVERITIES
from bpviz.engine.session.breakpoints import Breakpoint, Hit
from bpviz.gui import theme

ANY_LAYER = "any layer"
ANY_KIND = "any kind"
KIND_LABELS = {
    "nan": "NaN or Inf appears",
    "finding": "a finding is raised",
    "dead_share": "dead units exceed a share",
    "grad_below": "gradient norm falls below",
    "grad_above": "gradient norm rises above",
    "loss_jump": "loss jumps by a factor",
}


class BreakpointDialog(QtWidgets.QDialog):
    """Add a breakpoint: kind, then the threshold, layer or finding it needs."""

    def __init__(self, layers: list[str], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add breakpoint")
        self.kind = QtWidgets.QComboBox()
        for kind, label in KIND_LABELS.items():
            self.kind.addItem(label, kind)
        self.threshold = QtWidgets.QDoubleSpinBox()
        self.threshold.setDecimals(8)
        self.threshold.setRange(0.0, 1e12)
        self.layer = QtWidgets.QComboBox()
        self.layer.setEditable(True)
        self.layer.addItems([ANY_LAYER, *layers])
        self.finding_kind = QtWidgets.QComboBox()
        self.finding_kind.addItems([ANY_KIND, *FINDING_KINDS])
        self.severity = QtWidgets.QComboBox()
        self.severity.addItems(list(SEVERITIES))
        self.severity.setCurrentText("warning")
        self.form = QtWidgets.QFormLayout()
        self.form.addRow("Stop when", self.kind)
        self.form.addRow("Threshold", self.threshold)
        self.form.addRow("Layer", self.layer)
        self.form.addRow("Finding kind", self.finding_kind)
        self.form.addRow("Severity at least", self.severity)
        self.hint = QtWidgets.QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f"color: {theme.MUTED};")
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.hint)
        layout.addWidget(buttons)
        self.kind.currentIndexChanged.connect(lambda _i: self._fit_to_kind())
        self._fit_to_kind()

    def set_kind(self, kind: str) -> None:
        self.kind.setCurrentIndex(self.kind.findData(kind))

    def _fit_to_kind(self) -> None:
        kind = self.kind.currentData()
        needs = {
            "nan": (),
            "finding": ("layer", "finding_kind", "severity"),
            "dead_share": ("threshold", "layer"),
            "grad_below": ("threshold", "layer"),
            "grad_above": ("threshold", "layer"),
            "loss_jump": ("threshold",),
        }[kind]
        for name in ("threshold", "layer", "finding_kind", "severity"):
            widget = getattr(self, name)
            self.form.setRowVisible(widget, name in needs)
        defaults = {
            "dead_share": (50.0, " %", 1),
            "grad_below": (1e-7, "", 8),
            "grad_above": (1e3, "", 3),
            "loss_jump": (2.0, " ×", 2),
        }
        if kind in defaults:
            value, suffix, decimals = defaults[kind]
            self.threshold.setDecimals(decimals)
            self.threshold.setSuffix(suffix)
            self.threshold.setValue(value)
        self.hint.setText(
            {
                "nan": "Stops in the step where a NaN/Inf is born and selects the layer it was born in.",
                "finding": "Stops when a finding of this kind (and at least this severity) is raised or gets worse.",
                "dead_share": "Stops when the share of dead units in a ReLU-family layer exceeds this percentage.",
                "grad_below": "Stops when a layer's gradient norm ‖∂L/∂out‖ falls below this bound (vanishing).",
                "grad_above": "Stops when a layer's gradient norm ‖∂L/∂out‖ rises above this bound (exploding).",
                "loss_jump": "Stops when the loss grows by more than this factor from one step to the next.",
            }[kind]
        )
        self.adjustSize()

    def breakpoint(self) -> Breakpoint:
        """The breakpoint as filled in."""
        kind = self.kind.currentData()
        layer = self.layer.currentText().strip()
        threshold = self.threshold.value() / (100.0 if kind == "dead_share" else 1.0)
        finding_kind = self.finding_kind.currentText()
        return Breakpoint(
            kind=kind,
            threshold=threshold if kind not in ("nan", "finding") else 0.0,
            layer=None if layer in ("", ANY_LAYER) or kind in ("nan", "loss_jump") else layer,
            finding_kind=None if finding_kind == ANY_KIND or kind != "finding" else finding_kind,
            severity=self.severity.currentText() if kind == "finding" else "warning",
        )


class BreakpointsPanel(QtWidgets.QWidget):
    """Lists the breakpoints; `changed` carries the whole list after every edit."""

    changed = QtCore.Signal(object)  # list[Breakpoint]

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers: list[str] = []
        self.ask = self._ask  # replaced in tests: layers -> Breakpoint | None
        self.list = QtWidgets.QListWidget()
        self.list.setObjectName("breakpointList")
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentRowChanged.connect(lambda _r: self._update_buttons())
        self.add_button = QtWidgets.QPushButton("Add…")
        self.add_button.setToolTip("Add a condition that stops Run and Run N")
        self.add_button.clicked.connect(self.add_interactively)
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.hit_label = QtWidgets.QLabel()
        self.hit_label.setObjectName("breakpointHit")
        self.hit_label.setWordWrap(True)
        self.hit_label.setStyleSheet(theme.BREAKPOINT_HIT_STYLE)
        self.hit_label.hide()
        self.empty_label = QtWidgets.QLabel(
            "No breakpoints. Add one to stop a run when NaN/Inf appears, a finding "
            "is raised, units die, gradients vanish or explode, or the loss jumps."
        )
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet(f"color: {theme.MUTED}; padding: 4px;")
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.hit_label)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty_label)
        layout.addLayout(buttons)
        self._breakpoints: list[Breakpoint] = []
        self._filling = False
        self._fill()

    # --- the list ---
    def breakpoints(self) -> list[Breakpoint]:
        return list(self._breakpoints)

    def set_breakpoints(self, breakpoints: list[Breakpoint]) -> None:
        """Show `breakpoints` (loaded from a file's settings) without announcing a change."""
        self._breakpoints = list(breakpoints)
        self._fill()

    def add(self, breakpoint: Breakpoint) -> None:
        self._breakpoints.append(breakpoint)
        self._fill()
        self.list.setCurrentRow(len(self._breakpoints) - 1)
        self.changed.emit(self.breakpoints())

    def add_interactively(self) -> None:
        found = self.ask(self.layers)
        if found is not None:
            self.add(found)

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self._breakpoints):
            del self._breakpoints[row]
            self._fill()
            self.changed.emit(self.breakpoints())

    def set_enabled_at(self, row: int, enabled: bool) -> None:
        self.list.item(row).setCheckState(QtCore.Qt.CheckState.Checked if enabled else QtCore.Qt.CheckState.Unchecked)

    def set_layers(self, layers: list[str]) -> None:
        """Layers offered by the Add dialog."""
        self.layers = list(layers)

    # --- a run stopped ---
    def show_hit(self, hit: Hit) -> None:
        """Say which breakpoint stopped the run, and why; it stays until `clear_hit`."""
        self.hit_label.setText(f"●  Stopped at step {hit.step}: {hit.reason}\n({hit.breakpoint.describe()})")
        self.hit_label.show()
        for row, bp in enumerate(self._breakpoints):
            if bp == hit.breakpoint:
                self.list.setCurrentRow(row)

    def clear_hit(self) -> None:
        self.hit_label.hide()

    # --- internals ---
    def _ask(self, layers: list[str]) -> Breakpoint | None:
        dialog = BreakpointDialog(layers, self)
        return dialog.breakpoint() if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted else None

    def _fill(self) -> None:
        self._filling = True
        row = self.list.currentRow()
        self.list.clear()
        for bp in self._breakpoints:
            item = QtWidgets.QListWidgetItem(bp.describe())
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.CheckState.Checked if bp.enabled else QtCore.Qt.CheckState.Unchecked)
            item.setToolTip("Tick to arm, untick to keep it without stopping")
            self.list.addItem(item)
        self.list.setCurrentRow(min(row, self.list.count() - 1))
        self.empty_label.setVisible(not self._breakpoints)
        self._filling = False
        self._update_buttons()

    def _on_item_changed(self, item: QtWidgets.QListWidgetItem) -> None:
        if self._filling:
            return
        row = self.list.row(item)
        enabled = item.checkState() == QtCore.Qt.CheckState.Checked
        if 0 <= row < len(self._breakpoints) and self._breakpoints[row].enabled != enabled:
            self._breakpoints[row].enabled = enabled
            self.changed.emit(self.breakpoints())

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.list.currentRow() >= 0)
