"""How a simulation starts its processes: forked from a warm forkserver, not spawned cold.

A simulation's processes — a comparison's worker processes, the second process of a run shared between two cores,
a run made ahead in the background (carepath/simulate_compare.py, simulate.py, simulate_ahead.py) — were spawned:
each a new interpreter that imported the engine, checked the 56 forms against the JSON Schema meta-schema and parsed
and checked every diagram before its first step, about two seconds of a core each (docs/performance.md, "A
simulation's processes forked warm"). They now come from Python's *forkserver*: a process started once per server
(or command, or test worker), single-threaded, with nothing of the server's threads or connections, which imported
`carepath.warm` when it started — the modules, and the forms' and diagrams' checks done once (engine/forms.py and
engine/content_cache.py keep what passed, by its content, so a changed file is still checked). Each process forked
from it starts in about a tenth of that. Fork's own hazard — a copy of another thread's locks — does not arise: the
forkserver has no other thread (tests/test_forked.py checks it).

Two things a spawned process had that a forked one would not, kept by `call`:
- the environment: a forked process has the forkserver's, from when it started; `call` gives it the caller's own
  `CAREPATH_*` settings (which handlers, which forms...) of the moment it is started;
- its own random state: the standard library reseeds `random` at each fork, and engine/task_tree.py's id source
  drops its buffer of random bytes (os.register_at_fork), so no two processes make the same ids.

A process that is itself one of these (a run made ahead that shares its cases with a second process) spawns, as
before: a forkserver of its own would be a third member of the run's process group, which the server pauses and ends
as one (carepath/simulate_ahead.py).
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, Callable

PRELOAD = "carepath.warm"


_STARTED_HERE = False  # set in a process started through `call`


def context() -> Any:
    """The multiprocessing context a simulation starts its processes with: the warm forkserver's, or spawn in a
    process that is itself one of them. (A server's worker processes that another library started, such as
    uvicorn's, use the forkserver: they are not one of these.)"""
    if _STARTED_HERE:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])  # read when the forkserver starts (the first process), ignored after
    return ctx


def process(target: Callable[..., Any], *args: Any, name: str | None = None, daemon: bool | None = None) -> Any:
    """A process (not started) that runs `target(*args)` through `call`, from `context()`."""
    return context().Process(target=call, args=(settings(), target, *args), name=name, daemon=daemon)


def settings() -> dict[str, str]:
    """The caller's `CAREPATH_*` environment, for `call`."""
    return {k: v for k, v in os.environ.items() if k.startswith("CAREPATH_")}


def call(env: dict[str, str], target: Callable[..., Any], *args: Any) -> Any:
    """In the new process: the caller's `CAREPATH_*` settings in place of the forkserver's, the forkserver let go
    of (`_let_go`), then `target(*args)`."""
    for name in [k for k in os.environ if k.startswith("CAREPATH_") and k not in env]:
        del os.environ[name]
    os.environ.update(env)
    global _STARTED_HERE
    _STARTED_HERE = True
    _let_go()
    return target(*args)


def _let_go() -> None:
    """A process forked by the forkserver holds a copy of the pipe whose closing tells the forkserver that the server
    which started it is gone; while any such process lives, the forkserver would live on after the server, the
    process's parent would not change, and a run made ahead would not see that its server was killed (its watch is
    its parent changing; a paused run is hung up by the kernel only once the forkserver, its parent, has ended). So it
    closes its copy: the forkserver ends with the server. Nothing here uses the forkserver again (`context` spawns
    in a child). CPython keeps the pipe in `multiprocessing.forkserver._forkserver._forkserver_alive_fd` (3.8 to
    3.13); tests/test_forked.py and tests/test_simulate_ahead.py's killed-server tests fail if a later Python keeps
    it elsewhere."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is None or server.get_inherited_fds() is None:  # not started by a forkserver
        return
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        os.close(fd)
        server._forkserver_alive_fd = None


def stop() -> None:
    """End this process's forkserver, if it started one, and wait for it (the next process starts a new one). Its
    processes' processor time is then counted as this process's children's (`resource.RUSAGE_CHILDREN`): the
    benchmarks call it before they read that. CPython's `ForkServer._stop` (3.8 to 3.13), looked up, not assumed."""
    from multiprocessing import forkserver

    stopping = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stopping is not None:
        stopping()
