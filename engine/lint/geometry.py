"""Plane geometry for the layout rules: boxes, segments, and how big a modeller draws text.

A box is (x, y, width, height) in diagram pixels, y growing downwards, as in BPMN DI.
Where a label has no bounds in the file, it is placed as bpmn-js (the library behind
Camunda Modeler and the workbench's modeller) places it, and sized by `engine.lint.text`.
"""

from __future__ import annotations

import math

from .text import LINE_HEIGHT, TASK_FONT, label_size

Box = tuple[float, float, float, float]
Point = tuple[float, float]

LABEL_WIDTH = 90  # bpmn-js wraps external labels at 90px (DEFAULT_LABEL_SIZE)...
LABEL_DEFAULT_HEIGHT = 20  # ...and positions a new label as a 90x20 box before measuring its text
FLOW_LABEL_INDENT = 15  # bpmn-js puts a flow's label 15px above (or beside) the middle of the flow
TASK_LINES = 3  # lines a default 80px-high task box holds clear of its marker and boundary events
TASK_DEFAULT_HEIGHT = 80
TASK_LINE_HEIGHT = TASK_FONT * LINE_HEIGHT


def task_line_capacity(height: float) -> int:
    """Lines that fit in a task box `height` pixels high: 3 in the default 80px, one more per 14.4px."""
    return TASK_LINES + max(0, math.floor((height - TASK_DEFAULT_HEIGHT) / TASK_LINE_HEIGHT))


def shape_label(bounds: Box, text: str) -> Box:
    """Where bpmn-js draws the label of an event or gateway that has no label bounds: centred below it."""
    x, y, w, h = bounds
    lw, lh = label_size(text)
    mid_x, mid_y = x + w / 2, y + h + LABEL_DEFAULT_HEIGHT / 2
    return mid_x - lw / 2, mid_y - LABEL_DEFAULT_HEIGHT / 2, lw, lh


def flow_label(points: list[Point], text: str) -> Box | None:
    """Where bpmn-js draws a flow's name that has no label bounds: by the middle of its waypoints."""
    if len(points) < 2:
        return None
    mid = len(points) / 2 - 1
    first, second = points[math.floor(mid)], points[math.ceil(mid + 0.01)]
    x, y = first[0] + (second[0] - first[0]) / 2, first[1] + (second[1] - first[1]) / 2
    dx, dy = second[0] - first[0], second[1] - first[1]
    if dx != 0 and abs(math.atan(dy / dx)) < math.pi / 2:
        y -= FLOW_LABEL_INDENT
    else:
        x += FLOW_LABEL_INDENT
    lw, lh = label_size(text)
    return x - lw / 2, y - LABEL_DEFAULT_HEIGHT / 2, lw, lh


def boxes_overlap(a: Box, b: Box) -> bool:
    """Do two boxes share any area (touching edges do not count)?"""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def inside(inner: Box, outer: Box, tolerance: float = 0.5) -> bool:
    """Is `inner` wholly within `outer` (allowing half a pixel of rounding)?"""
    return (inner[0] >= outer[0] - tolerance and inner[1] >= outer[1] - tolerance
            and inner[0] + inner[2] <= outer[0] + outer[2] + tolerance
            and inner[1] + inner[3] <= outer[1] + outer[3] + tolerance)


def shrink(box: Box, by: float) -> Box:
    x, y, w, h = box
    return x + by, y + by, max(0.0, w - 2 * by), max(0.0, h - 2 * by)


def segment_crosses(p: Point, q: Point, box: Box) -> bool:
    """Does the segment p-q pass through the inside of `box` (running along an edge does not count)?

    Liang-Barsky clipping: the part of the segment inside the box's closed area must have length."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return False
    dx, dy = q[0] - p[0], q[1] - p[1]
    t0, t1 = 0.0, 1.0
    for edge_p, edge_q in ((-dx, p[0] - x), (dx, x + w - p[0]), (-dy, p[1] - y), (dy, y + h - p[1])):
        if edge_p == 0:
            if edge_q <= 0:  # parallel to this edge and on it or outside it
                return False
            continue
        t = edge_q / edge_p
        if edge_p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 >= t1:
            return False
    return (t1 - t0) * math.hypot(dx, dy) > 1e-6


def collinear_overlap(s1: tuple[Point, Point], s2: tuple[Point, Point], min_length: float = 1) -> Point | None:
    """Where two horizontal (or two vertical) segments on the same line run along each other, or None."""
    (a, b), (c, d) = s1, s2
    if abs(a[1] - b[1]) < 1 and abs(c[1] - d[1]) < 1 and abs(a[1] - c[1]) < 1:
        lo, hi = max(min(a[0], b[0]), min(c[0], d[0])), min(max(a[0], b[0]), max(c[0], d[0]))
        return ((lo + hi) / 2, a[1]) if hi - lo > min_length else None
    if abs(a[0] - b[0]) < 1 and abs(c[0] - d[0]) < 1 and abs(a[0] - c[0]) < 1:
        lo, hi = max(min(a[1], b[1]), min(c[1], d[1])), min(max(a[1], b[1]), max(c[1], d[1]))
        return (a[0], (lo + hi) / 2) if hi - lo > min_length else None
    return None



class Grid:
    """A spatial index: items filed by the grid cells their box touches, so a rule compares a box
    with its neighbours only, not with every item (a large diagram stays fast to lint). An item
    spanning very many cells (a huge subprocess, or absurd bounds) is kept aside and always offered."""

    CELL = 200.0
    MAX_SPAN = 32  # cells per side beyond which an item is "large"

    def __init__(self) -> None:
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._large: list[int] = []
        self._items: list[object] = []

    @classmethod
    def _range(cls, lo: float, hi: float) -> range | None:
        a, b = math.floor(lo / cls.CELL), math.floor(hi / cls.CELL)
        return range(a, b + 1) if b - a <= cls.MAX_SPAN else None

    def add(self, box: Box, item: object) -> None:
        index = len(self._items)
        self._items.append(item)
        xs, ys = self._range(box[0], box[0] + box[2]), self._range(box[1], box[1] + box[3])
        if xs is None or ys is None:
            self._large.append(index)
            return
        for cx in xs:
            for cy in ys:
                self._cells.setdefault((cx, cy), []).append(index)

    def near(self, box: Box) -> list[object]:
        """Every item whose cells meet `box`'s cells (a superset of those overlapping it), in insertion order."""
        found = set(self._large)
        xs, ys = self._range(box[0], box[0] + box[2]), self._range(box[1], box[1] + box[3])
        if xs is None or ys is None:
            return list(self._items)
        for cx in xs:
            for cy in ys:
                found.update(self._cells.get((cx, cy), ()))
        return [self._items[i] for i in sorted(found)]


def segment_box(p: Point, q: Point) -> Box:
    return min(p[0], q[0]), min(p[1], q[1]), abs(p[0] - q[0]), abs(p[1] - q[1])
