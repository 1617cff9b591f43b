"""Saving and restoring a running workflow without its diagram.

SpiffWorkflow's serializer writes the whole process spec into every saved workflow. Specs
are immutable per deployed version, so carepath keeps them once (in `process_versions`) and
saves only the task tree and data; on restore the cached spec objects are put back.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from .bpmn import connect_triggered, make_serializer
from .task_tree import CarepathWorkflow

#: bump when the stored shape changes; older rows are migrated on load
STATE_FORMAT = 1

_specs: ContextVar[tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]] = ContextVar("carepath_specs")


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> BpmnWorkflow:
        spec, subprocess_specs = _specs.get()
        dct = dict(dct, spec=None, subprocess_specs={})
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        from uuid import UUID

        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class StateCodec:
    """Turns a live workflow into stored text and back."""

    def __init__(self) -> None:
        self._serializer = make_serializer()
        # restores the engine's workflow class, stored under the library's name (engine/task_tree.py)
        _SpeclessWorkflowConverter(CarepathWorkflow, self._serializer.registry, typename="BpmnWorkflow")

    def dump(self, workflow: BpmnWorkflow) -> str:
        registry = self._serializer.registry
        registry._encoder_mode = True  # what serialize_json does: typed values (dates...) become tagged dicts
        try:
            dct = self._serializer.to_dict(workflow)
        finally:
            registry._encoder_mode = False
        return json.dumps(dct, separators=(",", ":"), cls=self._serializer._encoder_cls)

    def load(self, text: str, spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]) -> BpmnWorkflow:
        token = _specs.set((spec, subprocess_specs))
        try:
            return connect_triggered(self._serializer.from_dict(json.loads(text)))
        finally:
            _specs.reset(token)

    def convert_data(self, data: dict[str, Any]) -> Any:
        """Task data as plain JSON (dates and other typed values tagged the way the serializer does)."""
        return json.loads(json.dumps(data, cls=self._serializer._encoder_cls))

    def data_text(self, data: dict[str, Any]) -> str:
        """`json.dumps(self.convert_data(data), sort_keys=True)`, in one pass where it can be: keys that are not
        all text (which the round trip turns into text before sorting) take the round trip."""
        try:
            return json.dumps(data, cls=self._serializer._encoder_cls, sort_keys=True)
        except TypeError:
            return json.dumps(self.convert_data(data), sort_keys=True)
