"""Live hyperparameters: learning rate, momentum, weight decay and gradient clipping, changed between steps.

Each change is a remedy (undoable, marked on every plot's time axis); the
panel shows what the optimizer holds now and asks for changes with `apply`.
"""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from bpviz.gui import theme

FIELDS = (("lr", "Learning rate"), ("momentum", "Momentum"), ("weight_decay", "Weight decay"))
EDITABLE = "Editable between steps (not while running or paused)."  # the note while no change of it is in force


class ScientificSpinBox(QtWidgets.QDoubleSpinBox):
    """A spin box for values from 1e-8 to 1e3 that shows and accepts 0.001 or 1e-3, stepping by ×/÷ 2."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(0.0, 1e3)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            float(text)
            return QtGui.QValidator.State.Acceptable, text, pos
        except ValueError:
            return QtGui.QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        value = self.value()
        self.setValue(value * 2.0**steps if value > 0 else (1e-4 if steps > 0 else 0.0))


class HyperparamsPanel(QtWidgets.QWidget):
    """Spin boxes over the optimizer's values; Apply sends only what changed."""

    apply_requested = QtCore.Signal(object)  # list of (remedy name, args) to apply in order

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.current: dict[str, float | None] = {}
        self.boxes: dict[str, ScientificSpinBox] = {}
        form = QtWidgets.QFormLayout()
        for key, label in FIELDS:
            box = ScientificSpinBox()
            box.setObjectName(f"hyper_{key}")
            self.boxes[key] = box
            form.addRow(label, box)
        self.clip_on = QtWidgets.QCheckBox("Clip gradient norm at")
        self.clip = ScientificSpinBox()
        self.clip.setObjectName("hyper_clip")
        self.clip.setValue(1.0)
        self.clip_on.toggled.connect(self.clip.setEnabled)
        form.addRow(self.clip_on, self.clip)
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setToolTip(
            "Change the optimizer between steps; each change is undoable and marked on the plots"
        )
        self.apply_button.clicked.connect(self.apply)
        self.undo_button = QtWidgets.QPushButton("Undo last change")
        self.note = QtWidgets.QLabel(EDITABLE)
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {theme.MUTED};")
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.undo_button)
        buttons.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.note)
        layout.addStretch(1)
        self._undoable = False  # a change is in force that Undo can take back (set_undoable)
        self.set_values({})
        self.set_busy(True)

    def set_values(self, values: dict) -> None:
        """What the optimizer holds now (None: this optimizer has no such value)."""
        self.current = dict(values)
        for key, box in self.boxes.items():
            value = values.get(key)
            box.setProperty("available", value is not None)
            box.setValue(float(value) if value is not None else 0.0)
            box.setEnabled(value is not None and self.apply_button.isEnabled())
            box.setToolTip("" if value is not None or not values else "this optimizer has no such setting")
        clip = values.get("clip")
        self.clip_on.setChecked(clip is not None)
        if clip is not None:
            self.clip.setValue(float(clip))
        self.clip.setEnabled(self.clip_on.isChecked() and self.apply_button.isEnabled())

    def changes(self) -> list[tuple[str, tuple]]:
        """The remedies that would bring the optimizer to the values shown."""
        found = []
        for key, box in self.boxes.items():
            old = self.current.get(key)
            if old is not None and not math.isclose(box.value(), float(old), rel_tol=1e-9, abs_tol=1e-15):
                found.append(("set_hyperparameter", (key, box.value())))
        clip = self.clip.value() if self.clip_on.isChecked() else None
        old_clip = self.current.get("clip")
        if (clip is None) != (old_clip is None) or (clip is not None and not math.isclose(clip, old_clip)):
            found.append(("set_gradient_clipping", (clip,)))
        return found

    def apply(self) -> None:
        changes = self.changes()
        if changes:
            self.apply_requested.emit(changes)
        else:
            self.note.setText("Nothing changed.")

    def set_busy(self, busy: bool) -> None:
        """Disabled while training runs or a step is paused."""
        self.apply_button.setEnabled(not busy)
        self.undo_button.setEnabled(not busy and self._undoable)
        for box in self.boxes.values():
            box.setEnabled(not busy and bool(box.property("available")))
        self.clip_on.setEnabled(not busy)
        self.clip.setEnabled(not busy and self.clip_on.isChecked())

    def set_undoable(self, undoable: bool) -> None:
        """Whether a change is in force that Undo can take back; without one the button is disabled rather
        than answering "Nothing to undo"."""
        self._undoable = undoable
        self.undo_button.setEnabled(self.apply_button.isEnabled() and undoable)

    def applied(self, step: int, label: str) -> None:
        self.note.setText(f"From step {step}: {label}")

    def remedy_gone(self) -> None:
        """The run shown no longer has the change the note names (rewound before it, or another run)."""
        self.note.setText(EDITABLE)
