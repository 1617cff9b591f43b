"""A simulation's processes come from a warm forkserver (carepath/forked.py): started warm, with the caller's
settings, their own ids, and no thread copied; the forkserver ends with the process that started it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from carepath import forked
from engine.task_tree import new_task_id

ROOT = Path(__file__).resolve().parent.parent


def _what_the_child_sees(conn) -> None:
    import threading

    from engine import bpmn, forms

    warm = sys.modules.get("carepath.warm")
    conn.send({
        "warmed": bool(warm and warm.WARMED),
        "forms_checked": len(forms._CHECKED),
        "diagrams_built": len(bpmn._BUILT_SPECS._values),
        "threads": threading.active_count(),
        "setting": os.environ.get("CAREPATH_TEST_FORKED"),
        "gone": os.environ.get("CAREPATH_TEST_FORKED_GONE"),
        "ids": [str(new_task_id()) for _ in range(3)],
        "its_own_processes": forked.context().get_start_method(),
    })
    conn.close()


def _start():
    ours, theirs = multiprocessing.Pipe(duplex=False)
    proc = forked.process(_what_the_child_sees, theirs)
    proc.start()
    theirs.close()
    seen = ours.recv()
    proc.join(30)
    return seen, proc.exitcode


def test_a_process_starts_warm_with_the_callers_settings_and_ids_of_its_own(monkeypatch):
    ctx = forked.context()
    assert ctx.get_start_method() == "forkserver"
    monkeypatch.setenv("CAREPATH_TEST_FORKED_GONE", "set when the forkserver started")
    first, code = _start()  # the forkserver starts with this setting
    assert code == 0 and first["gone"] == "set when the forkserver started"
    # the forms and the diagrams were checked in the forkserver, once: the process finds them done
    assert first["warmed"] and first["forms_checked"] >= 50 and first["diagrams_built"] >= 10, first
    # settings changed since the forkserver started are the caller's, not the forkserver's
    monkeypatch.setenv("CAREPATH_TEST_FORKED", "the caller's")
    monkeypatch.delenv("CAREPATH_TEST_FORKED_GONE")
    second, code = _start()
    assert code == 0 and second["setting"] == "the caller's" and second["gone"] is None
    assert second["threads"] == 1
    # a process of these that starts one of its own spawns it (no forkserver of its own in a run's process group)
    assert second["its_own_processes"] == "spawn"
    ids = first["ids"] + second["ids"] + [str(new_task_id()) for _ in range(3)]
    assert len(set(ids)) == 9  # no two processes make the same ids


def test_a_forked_process_does_not_go_on_with_its_parents_random_ids():
    new_task_id()  # this process's buffer of random bytes is filled
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, written to the parent
        try:
            os.write(w, str(new_task_id()).encode())
        finally:
            os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.waitpid(pid, 0)
    os.close(r)
    assert child != str(new_task_id())


WARM_ALONE = """
import threading
import carepath.warm as warm
print(warm.WARMED, threading.active_count(), [t.name for t in threading.enumerate()])
"""


def test_the_forkserver_warms_up_without_starting_a_thread():
    """What the forkserver imports makes no thread: a fork copies only the thread that forks, so a thread's held lock
    would be held for ever in every process forked from it."""
    out = subprocess.run([sys.executable, "-c", WARM_ALONE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.split(" ", 2)[:2] == ["True", "1"], out.stdout + out.stderr


SERVER = """
import time
from carepath import forked

proc = forked.process(time.sleep, 600)  # lives on
proc.start()
import multiprocessing.forkserver as fs
print(proc.pid, fs._forkserver._forkserver_pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_forkserver_ends_with_its_server_though_a_process_it_forked_lives_on():
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child, forkserver = (int(x) for x in server.stdout.readline().split())
        time.sleep(0.5)
        assert _alive(forkserver) and _alive(child)  # both there
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        end = time.monotonic() + 15
        while _alive(forkserver) and time.monotonic() < end:
            time.sleep(0.05)
        assert not _alive(forkserver)  # it ended, so the process it forked has a new parent (and can tell)
        assert _alive(child)
    finally:
        if server.poll() is None:
            server.kill()
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
