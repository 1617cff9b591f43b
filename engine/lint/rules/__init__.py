"""carepath's lint rules, one per module; `RULES` maps each rule's name to it, in report order."""

from __future__ import annotations

from ..rule import Rule
from . import (
    element_in_lane,
    flow_overlap,
    missing_di,
    name_fits_box,
    no_diagonal_flow,
    no_flow_through_shape,
    no_label_overlap,
    no_start_form,
    unbounded_cycle,
)

RULES: dict[str, Rule] = {
    m.rule.name: m.rule
    for m in (missing_di, no_flow_through_shape, no_label_overlap, name_fits_box, element_in_lane, flow_overlap,
              no_diagonal_flow, no_start_form, unbounded_cycle)
}
