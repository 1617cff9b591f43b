"""The step's statements on SQLite, straight through the driver (issue 14 item 2).

SQLAlchemy Core costs about 15 µs a statement on top of SQLite's own 2-3 µs (an execution context,
parameter processing, a result set-up), which made it most of the cost of the statements a step runs.
A `Prepared` statement is a Core construct compiled once per dialect to its SQL text, the order of its
parameters and their bind processors (datetimes become SQLite's text, as Core would write them); on
SQLite it runs on the connection's sqlite3 connection, in the transaction SQLAlchemy began, with fixed
SQL text that sqlite3 keeps prepared in its statement cache. On any other database it is executed by
Core as before (`conn.execute`).

What SQLAlchemy would do around a statement is kept: listeners of `before_cursor_execute` are told of
each statement (tests/test_step_statements.py counts them), and a driver error is raised as
SQLAlchemy's wrapped exception (IntegrityError, OperationalError ...), as Core raises it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

_Processor = Callable[[Any], Any] | None


class _Compiled:
    __slots__ = ("sql", "names", "defaults", "processors", "_processed", "_get", "columns", "result_processors",
                 "row_type")

    def __init__(self, stmt: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        if compiled.insert_prefetch or compiled.update_prefetch:  # Python-side column defaults: Core's work
            raise ValueError(f"give every column with a Python default explicitly: {compiled.string}")
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # binds with a value of their own (a literal in the statement); a missing required one is a KeyError
        self.defaults: dict[str, Any] = {k: v for k, v in compiled.construct_params(_check=False).items()
                                         if not compiled.binds[k].required}
        bind_processors = compiled._bind_processors
        self.processors: tuple[_Processor, ...] = tuple(_last_one(bind_processors.get(n)) for n in self.names)
        self._processed = [(i, p) for i, p in enumerate(self.processors) if p is not None]
        get = operator.itemgetter(*self.names) if self.names else (lambda _: ())
        self._get = get if len(self.names) != 1 else (lambda d: (d[self.names[0]],))
        result_columns = compiled._result_columns
        self.columns: tuple[str, ...] = tuple(c[0] for c in result_columns)
        self.result_processors: tuple[_Processor, ...] = tuple(
            c[3]._cached_result_processor(dialect, None) for c in result_columns)
        self.row_type = _row_type(self.columns, self.result_processors) if self.columns else None

    def params(self, given: dict[str, Any]) -> list[Any]:
        values = list(self._get({**self.defaults, **given} if self.defaults else given))
        for i, proc in self._processed:
            if values[i] is not None:
                values[i] = proc(values[i])
        return values

    def row(self, raw: tuple[Any, ...]) -> Any:
        assert self.row_type is not None
        return self.row_type(raw)


def _last_one(proc: _Processor) -> _Processor:
    """A bind processor that keeps its last result: a step writes the same `now` into many rows and columns."""
    if proc is None:
        return None
    kept: list[tuple[Any, Any]] = [(object(), None)]  # one (value, result) pair, replaced whole: thread-safe

    def process(value: Any) -> Any:
        last, result = kept[0]
        if value is not last:
            result = proc(value)
            kept[0] = (value, result)
        return result

    return process


def _row_type(columns: tuple[str, ...], processors: tuple[_Processor, ...]) -> type:
    """A row read by name (`row.version`), as Core's rows are, and `_mapping` as theirs; a value is converted
    (a datetime from SQLite's text) only when it is read."""
    index = {name: (i, processors[i]) for i, name in enumerate(columns)}

    class Row(tuple):  # type: ignore[type-arg]
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            try:
                i, proc = index[name]
            except KeyError:
                raise AttributeError(name) from None
            value = self[i]
            return proc(value) if proc is not None and value is not None else value

        @property
        def _mapping(self) -> dict[str, Any]:
            return {name: getattr(self, name) for name in columns}

    return Row


class Prepared:
    """One Core statement, compiled once per dialect (and per set of inserted columns).

    `column_keys`: for an INSERT of rows given as dicts, the columns they all have (Core would compile
    the statement for the keys of the first row; here they are fixed)."""

    __slots__ = ("stmt", "column_keys", "_compiled")

    def __init__(self, stmt: ClauseElement, column_keys: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        self.column_keys = tuple(column_keys) if column_keys else None
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The statement compiled for `dialect`, once: its SQL text, the values bound in it (`defaults`) and, for
        the driver calls on SQLite, its parameters' order and processors. PostgreSQL's pipelined statements
        (engine/pg_batch.py) use the text and the values."""
        c = self._compiled.get(dialect.name)
        if c is None:
            c = self._compiled[dialect.name] = _Compiled(self.stmt, dialect, self.column_keys)
        return c

    def _for(self, conn: Connection) -> _Compiled | None:
        return self.compiled(conn.dialect) if conn.dialect.name == "sqlite" else None

    def run(self, conn: Connection, params: dict[str, Any]) -> Any:
        """Execute once; returns the driver's cursor on SQLite, Core's result elsewhere (both have
        `rowcount`; read rows with `first`/`scalar`)."""
        c = self._for(conn)
        if c is None:
            return conn.execute(self.stmt, params)
        return _execute(conn, c, c.params(params), many=False)

    def run_many(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        """Execute for each row in one `executemany`; returns the rows changed (summed by sqlite3)."""
        c = self._for(conn)
        if c is None:
            return conn.execute(self.stmt, rows).rowcount
        return _execute(conn, c, [c.params(r) for r in rows], many=True).rowcount

    def first(self, conn: Connection, params: dict[str, Any]) -> Any:
        """The first row (read by name), or None."""
        c = self._for(conn)
        if c is None:
            return conn.execute(self.stmt, params).first()
        raw = _execute(conn, c, c.params(params), many=False).fetchone()
        return None if raw is None else c.row(raw)

    def compiled_for(self, dialect: Dialect) -> _Compiled:
        """The statement compiled for `dialect` (`sql`, the fixed parameters `defaults`, `row(raw)`), for a caller
        that runs it on a driver connection of its own (the API's session check on PostgreSQL, api/auth.py)."""
        c = self._compiled.get(dialect.name)
        if c is None:
            c = self._compiled[dialect.name] = _Compiled(self.stmt, dialect, self.column_keys)
        return c

    def first_on_driver(self, dialect: Dialect, driver: Any, params: dict[str, Any]) -> Any:
        """The first row (read by name), or None, run on a sqlite3 connection of the caller's own, outside any
        SQLAlchemy transaction: in autocommit, the statement is its own read transaction (the API's session
        check, api/auth.py). Driver errors are the driver's; no listener is told (it is no step's statement)."""
        c = self.compiled(dialect)
        raw = driver.execute(c.sql, c.params(params)).fetchone()
        return None if raw is None else c.row(raw)

    def scalar(self, conn: Connection, params: dict[str, Any]) -> Any:
        """The first column of the first row (e.g. an id from RETURNING), or None."""
        c = self._for(conn)
        if c is None:
            return conn.execute(self.stmt, params).scalar_one_or_none()
        raw = _execute(conn, c, c.params(params), many=False).fetchone()
        if raw is None:
            return None
        proc = c.result_processors[0]
        return proc(raw[0]) if proc is not None and raw[0] is not None else raw[0]


def _execute(conn: Connection, c: _Compiled, params: Any, *, many: bool) -> Any:
    if not conn.in_transaction():  # as Core begins one (autobegin): never a statement outside a transaction
        conn.begin()
    driver = conn.connection.driver_connection
    listeners = conn.dispatch.before_cursor_execute
    if listeners:
        for fn in listeners:
            fn(conn, None, c.sql, params, None, many)
    try:
        return driver.executemany(c.sql, params) if many else driver.execute(c.sql, params)
    except conn.dialect.loaded_dbapi.Error as e:
        raise exc.DBAPIError.instance(c.sql, params, e, conn.dialect.loaded_dbapi.Error,
                                      dialect=conn.dialect) from e


_PREPARED: dict[tuple[int, tuple[str, ...]], Prepared] = {}


def prepared(stmt: Any, keys: Sequence[str] = ()) -> Prepared:
    """The one `Prepared` of `stmt` given rows with the columns `keys` (none: not an insert), so that it is
    compiled once however often it is asked for (`insert_rows`, engine/pg_batch.py). It keeps `stmt`, so the
    statement's id is never another's."""
    key = (id(stmt), tuple(keys))
    found = _PREPARED.get(key)
    if found is None:
        found = _PREPARED[key] = Prepared(stmt, keys)
    return found


def insert_rows(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """`conn.execute(insert(table), rows)`, through the driver on SQLite when every row has the same columns
    (the statement is compiled once per set of columns)."""
    keys = tuple(rows[0])
    if conn.dialect.name != "sqlite" or any(len(r) != len(keys) or tuple(r) != keys for r in rows[1:]):
        conn.execute(stmt, rows)
        return
    prepared(stmt, keys).run_many(conn, rows)
