"""Diagrams for the script budget's tests and bench (tests/test_script_budget.py, bench/bomb_bench.py):
a timer in front of a script, the shape that used to make the timer job hang for every case."""

from __future__ import annotations

from xml.sax.saxutils import escape


def timer_then_script(process_id: str, script: str, *, wait: str = "P1D") -> bytes:
    """start -> timer (`wait`) -> script task `run` (`script`) -> end."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="{process_id}_defs" targetNamespace="http://carepath.test">
  <bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="wait_def"><bpmn:timeDuration>{wait}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:scriptTask id="run" name="Run the script" scriptFormat="python">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="run"/>
    <bpmn:sequenceFlow id="f3" sourceRef="run" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
""".encode()


#: a CPU bomb the deploy checks cannot see (the loop's condition depends on what it computes)
CPU_BOMB = "partial = 1\nn = 1\nwhile n > 0:\n    n = n + 1\n"
#: a script that needs the child (it loops) but ends at once
HEALTHY_LOOP = "total = 0\nfor i in range(10):\n    total = total + i\n"
#: a script bounded at sight: runs in-process
HEALTHY_INLINE = "fired_at = now().isoformat()\n"
