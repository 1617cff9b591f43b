"""How bpmn-js lays out a name: the lines it breaks it into and how wide they are.

bpmn-js (the library behind Camunda Modeler and the workbench's modeller) draws names in
Arial and wraps them with diagram-js's text layout: take the whole line; while it is wider
than the box, cut it to about the characters that would fit, at a space or hyphen where
possible; the rest starts the next line. This module repeats that algorithm with Arial's
published character widths (Liberation Sans, which browsers substitute for Arial, has the
same widths), so the lint rules see the lines a process owner sees.
"""

from __future__ import annotations

import math
import re

# Advance widths of Arial / Helvetica in 1/1000 em, printable ASCII from the space (32) to "~" (126).
_ASCII = (
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,  # space to "/"
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556,  # 0-9
    278, 278, 584, 584, 584, 556, 1015,  # : ; < = > ? @
    667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,  # A-M
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611,  # N-Z
    278, 278, 278, 469, 556, 333,  # [ \ ] ^ _ `
    556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833,  # a-m
    556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500,  # n-z
    334, 260, 334, 584,  # { | } ~
)
_OTHER = {"\u2018": 222, "\u2019": 222, "\u201c": 333, "\u201d": 333, "\u2013": 556, "\u2014": 1000,
          "\u2026": 1000, "\u00a3": 556, "\u00a0": 278, "\u00ad": 0}
_DEFAULT = 556  # most other letters (accented Latin) are as wide as a lower-case "n"
_BREAKS = re.compile(r"(\s|-|\u00AD)")
_SOFT_BREAK = "\u00ad"

TASK_FONT = 12  # bpmn-js's default text size; external labels are 1px smaller
LABEL_FONT = 11
LINE_HEIGHT = 1.2


def width(text: str, font_size: float) -> float:
    """Pixels `text` takes in Arial at `font_size`."""
    units = 0
    for ch in text:
        code = ord(ch)
        units += _ASCII[code - 32] if 32 <= code <= 126 else _OTHER.get(ch, _DEFAULT)
    return units * font_size / 1000


def _semantic_shorten(line: str, max_length: float) -> str:
    parts = _BREAKS.split(line)
    kept: list[str] = []
    length = 0
    if len(parts) > 1:
        for part in parts:
            if not part:  # diagram-js stops at the first empty piece (two breaks in a row)
                break
            if len(part) + length < max_length:
                kept.append(part)
                length += len(part)
            else:
                if part in ("-", _SOFT_BREAK) and kept:
                    kept.pop()
                break
    if kept and kept[-1] == _SOFT_BREAK:
        kept[-1] = "-"
    return "".join(kept)


def _js_round(x: float) -> int:
    return math.floor(x + 0.5)


def _shorten(line: str, line_width: float, max_width: float) -> str:
    length = max(len(line) * (max_width / line_width), 1)
    short = _semantic_shorten(line, length)
    return short or line[: max(_js_round(length - 1), 1)]


def layout(text: str, max_width: float, font_size: float) -> list[tuple[str, float]]:
    """The lines (text, width in pixels) bpmn-js draws `text` in, wrapped at `max_width` pixels."""
    pending = re.split(r"\u00AD?\r?\n", text)
    out: list[tuple[str, float]] = []
    while pending:
        original = fit = pending.pop(0)
        while True:
            w = width(fit, font_size) if fit else 0.0
            if fit in (" ", "") or w <= max_width or len(fit) < 2:
                break
            shorter = _shorten(fit, w, max_width)
            fit = shorter if len(shorter) < len(fit) else fit[:-1]  # always progress
        if len(fit) < len(original):
            pending.insert(0, original[len(fit):].strip())
        out.append((fit, w))
    return out


def task_lines(name: str, box_width: float) -> int:
    """Lines a task's name takes in a box `box_width` wide (12px text, 7px padding each side)."""
    return len(layout(name, box_width - 14, TASK_FONT))


def label_size(name: str, wrap_at: float = 90) -> tuple[float, float]:
    """(width, height) bpmn-js gives an external label (11px text wrapped at 90px, 13.2px lines)."""
    lines = layout(name, wrap_at, LABEL_FONT)
    return math.ceil(max(w for _, w in lines)), math.ceil(len(lines) * LABEL_FONT * LINE_HEIGHT)
