"""Hot-path queries built and compiled by the ORM once, then run again with new values.

Building and compiling a queryset costs the hot path 0.3–0.8 ms of CPU a statement before
PostgreSQL sees it (a `select_for_update().select_related(...).first()` 0.9 ms, the same SQL
sent as it is 0.1 ms: `python -m bench.hotpath --profile accept`), and the hot operations run
the same few shapes with different ids. `Prepared` keeps the ORM as the one way a query is
written: the queryset is built once with a stand-in value for each argument, compiled for the
database in use, and later runs only swap the values into the compiled parameters and read the
rows through the ORM's own iterables (model instances, `select_related`, `values_list`).

    JOB_TO_ANSWER = Prepared(lambda job_id: Job.objects.filter(pk=job_id)[:1], job_id=int)
    job = JOB_TO_ANSWER.first(job_id=7)

Rules, checked when a query is compiled: every argument must reach the SQL as a parameter
(not be inlined, dropped or turned into something else), so an argument is a plain value of its
declared type: int, float, str, datetime, or a list of ids given to the `any_of` lookup below
(`__in` compiles one placeholder per element, so its SQL changes with the list's length).
Whatever the build reads besides its arguments (settings, the clock) is read once.
(django-prepared-queries did this for Django < 2.2 and is not kept up.)
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import Field, ForeignObject, Lookup, QuerySet, sql
from django.db.transaction import TransactionManagementError

try:
    from django.db.backends.postgresql.base import ServerBindingCursor
except ImportError:  # no psycopg 3: SQLite only
    ServerBindingCursor = None

# A stand-in per kind of argument (and its position), unlike any value a query holds; ints stay
# within 32 bits, as Django turns an out-of-range integer lookup into an empty result.
_STAND_INS: dict[str, Callable[[int], object]] = {
    "int": lambda n: -2_111_000_000 - n,
    "float": lambda n: -7.319e-300 - n * 1e-310,
    "str": lambda n: f"\x1fprepared-argument-{n}\x1f",
    "datetime": lambda n: _CLASSES["datetime"](1901, 2, 3, 4, 5, 6, 700_000 + n, tzinfo=UTC),
    "list": lambda n: [-2_111_000_000 - n],
}
# Kept in a dict: a test's frozen clock (freezegun) swaps module attributes holding the datetime class. The
# datetime stand-in reads it here too, so a form compiled under a frozen clock matches the template built outside it.
_CLASSES = {"datetime": datetime, "list": list, "float": float, "int": int, "str": str}


def _kind(cls: type) -> str | None:
    if cls is bool:
        return None
    return next((name for name, base in _CLASSES.items() if isinstance(cls, type) and issubclass(cls, base)), None)


# Set while a `Prepared` query compiles its one-element form (PostgreSQL): `any_of` then compiles to `= %s`.
_one_element = threading.local()


class AnyOf(Lookup):
    """`field__any_of=[…]`: membership in a list sent as one parameter, whatever its length.

    PostgreSQL: `field = ANY(%s)` with an array; SQLite: `field IN (SELECT value FROM json_each(%s))`.
    Unlike `__in`, the SQL does not change with the list, so a `Prepared` query can take the list.
    A `Prepared` query also keeps a form for one-element lists, `field = %s` (see `Prepared._run`).
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        return [self.lhs.output_field.get_prep_value(value) for value in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            if getattr(_one_element, "compiling", False) and len(self.rhs) == 1:
                return f"{lhs} = %s", (*lhs_params, self.rhs[0])
            return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))
        return f"{lhs} IN (SELECT value FROM json_each(%s))", (*lhs_params, _json_list(self.rhs))


# Foreign keys take only lookups registered from ForeignObject down, not Field's.
Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)


def _json_list(values) -> str:
    return json.dumps(list(values))


def _list(values) -> list:
    return list(values)


def _only(values):
    """A one-element list's element: the value of `any_of`'s one-element form (`= %s`)."""
    return values[0]


def _checked(arguments: dict[str, type]) -> dict[str, str]:
    """The arguments' kinds by name ("int", "datetime", …); ImproperlyConfigured for any other type."""
    kinds = {name: _kind(cls) for name, cls in arguments.items()}
    unknown = [name for name, kind in kinds.items() if kind is None]
    if unknown:
        raise ImproperlyConfigured(f"Prepared arguments are int, float, str, datetime or list: not {unknown}")
    return kinds


def _stand_ins(arguments: dict[str, str]) -> dict[str, object]:
    return {name: _STAND_INS[kind](n) for n, (name, kind) in enumerate(arguments.items())}


def _slots(arguments: dict[str, str], params, connection, *, one: bool = False) -> dict[int, tuple[str, Callable]]:
    """Where each argument's stand-in landed in the compiled parameters, and how a value is adapted there."""
    slots: dict[int, tuple[str, Callable]] = {}
    for name, stand_in in _stand_ins(arguments).items():
        adapters = {
            "datetime": [_same, connection.ops.adapt_datetimefield_value], "list": [_only] if one else [_list, _json_list]
        }.get(arguments[name], [_same])
        for position, param in enumerate(params):
            for adapt in adapters:
                adapted = adapt(stand_in)
                if type(param) is type(adapted) and param == adapted:
                    slots[position] = (name, adapt)
                    break
        if name not in {slot_name for slot_name, _ in slots.values()}:
            raise ImproperlyConfigured(
                f"Prepared argument {name!r} does not reach the SQL as a parameter (inlined, dropped or transformed): "
                f"its stand-in {stand_in!r}, the parameters {list(params)!r}."
            )
    return slots


_INT64 = (-(2**63), 2**63 - 1)


def _beyond_int64(arguments: dict[str, str], values: dict) -> bool:
    """An int argument no 64-bit column holds: the ORM answers those (an empty match), a driver may raise."""
    return any(
        kind == "int" and isinstance(values.get(name), int) and not _INT64[0] <= values[name] <= _INT64[1]
        for name, kind in arguments.items()
    )


def _same(value):
    return value


def _params(params: tuple, slots: dict[int, tuple[str, Callable]], values: dict, arguments: dict) -> tuple:
    if values.keys() != arguments.keys():
        raise TypeError(f"This prepared query takes {sorted(arguments)}, got {sorted(values)}")
    params = list(params)
    for position, (name, adapt) in slots.items():
        params[position] = adapt(values[name])
    return tuple(params)


@contextmanager
def server_bound(connection):
    """Cursors opened meanwhile on this thread's connection bind their values on the server (PostgreSQL).

    For the statements below, and for a hot statement written in SQL whose text does not change
    from run to run (`server_bound_cursor`).

    psycopg then prepares a statement the connection has run `prepare_threshold` times (5) and
    afterwards sends only its values: PostgreSQL parses and plans it once per connection.
    Django's own cursors bind on the client, which psycopg never prepares. Not while queries are
    logged (DEBUG, `CaptureQueriesContext`): the log could not show a prepared run's SQL.
    """
    if connection.vendor != "postgresql" or ServerBindingCursor is None or not settings.DATABASE_PREPARED_STATEMENTS \
            or connection.queries_logged:
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    factory = raw.cursor_factory
    raw.cursor_factory = ServerBindingCursor
    try:
        yield
    finally:
        raw.cursor_factory = factory


@contextmanager
def server_bound_cursor(connection):
    """A cursor of `connection` that binds on the server (`server_bound`), for a hot statement written in SQL."""
    with server_bound(connection), connection.cursor() as cursor:
        yield cursor


def _shallow(obj):
    """A copy sharing obj's attributes (QuerySet's own pickling hook would run the query)."""
    twin = obj.__class__.__new__(obj.__class__)
    twin.__dict__ = obj.__dict__.copy()
    return twin


class Prepared:
    """A queryset with arguments: built and compiled once per database, run with new values."""

    def __init__(self, build: Callable[..., QuerySet], **arguments: type):
        self._build, self._arguments = build, _checked(arguments)
        self._template: QuerySet | None = None
        # (database alias, one-element form) -> (compiler, SQL, parameters, slots)
        self._compiled: dict[tuple[str, bool], tuple] = {}
        self._lock = threading.Lock()
        self._lists = [name for name, kind in self._arguments.items() if kind == "list"]

    def all(self, **values) -> list:
        """Every row, as the built queryset would yield them (instances, or its values_list tuples)."""
        return self._run(values)

    def first(self, **values):
        """The first row, or None; the build sets the LIMIT (`[:1]`) and the order."""
        rows = self._run(values)
        return rows[0] if rows else None

    def _run(self, values: dict) -> list:
        template = self._template if self._template is not None else self._built()  # bool() would run it
        using = template.db
        connection = connections[using]
        if template.query.select_for_update and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        if _beyond_int64(self._arguments, values):
            return list(self._build(**values))
        # Every list one id long (PostgreSQL): the `= %s` form. For `= ANY($1)` with a one-element array,
        # PostgreSQL's custom plan looks cheaper than its generic one, so it planned the statement afresh
        # at every run (for the dispatch step's provider read 0.14 ms of its CPU, for the follower's re-read
        # of one provider ~0.5 ms); `= $1` keeps one plan per connection.
        one = bool(self._lists) and connection.vendor == "postgresql" and all(
            isinstance(values.get(name), (list, tuple)) and len(values[name]) == 1 for name in self._lists
        )
        key = (using, one)
        compiled, sql_text, params, slots = self._compiled.get(key) or self._compile(template, key)
        params = _params(params, slots, values, self._arguments)
        # The compiled compiler is only read from here on; each run gets its own copy, bound to
        # this thread's connection and answering with the SQL already built.
        compiler = _shallow(compiled)
        compiler.connection = connection
        compiler.as_sql = lambda *args, **kwargs: (sql_text, params)
        compiler.get_converters = self._converters_for(compiler, connection, one)
        queryset = _shallow(template)
        queryset._result_cache, queryset._prefetch_done = None, False
        # Not through QuerySet.query's setter, which turns a values_list() into values().
        queryset._query = _shallow(template.query)
        queryset._query.get_compiler = lambda *args, **kwargs: compiler
        with server_bound(connection):
            return list(queryset)

    def _converters_for(self, compiler, connection, one: bool) -> Callable:
        """The compiler's `get_converters`, answered once per connection: a run reads the same columns every time.

        The converters are the connection's own (its `ops`), so they are kept on the connection,
        and go with it. Asking for them cost a result-reading statement ~0.1 ms of its CPU.
        """
        known = connection.__dict__.setdefault("_prepared_converters", {})

        def get_converters(expressions):
            kept = known.get((id(self), one))
            # The same expressions (the compiled query's own select), not merely equal ones, get the same answer.
            if kept is None or len(kept[0]) != len(expressions) or any(a is not b for a, b in zip(kept[0], expressions)):
                kept = known[(id(self), one)] = (tuple(expressions), type(compiler).get_converters(compiler, expressions))
            return kept[1]

        return get_converters

    def _built(self) -> QuerySet:
        with self._lock:
            if self._template is None:
                template = self._build(**_stand_ins(self._arguments))
                if not isinstance(template, QuerySet):
                    raise ImproperlyConfigured("A Prepared build returns a QuerySet.")
                self._template = template
        return self._template

    def _compile(self, template: QuerySet, key: tuple[str, bool]) -> tuple:
        using, one = key
        if one and (using, False) not in self._compiled:
            self._compile(template, (using, False))  # the list form first: it refuses a list the SQL spreads (`__in`)
        compiler = template.query.get_compiler(using=using)
        _one_element.compiling = one
        try:
            sql_text, params = compiler.as_sql()
        finally:
            _one_element.compiling = False
        compiled = (compiler, sql_text, tuple(params), _slots(self._arguments, params, connections[using], one=one))
        self._compiled[key] = compiled
        return compiled


class _PreparedWrite:
    """An UPDATE or DELETE built once, per database; `run` → rows changed. Subclasses say how the build compiles."""

    def __init__(self, build: Callable, **arguments: type):
        self._build, self._arguments = build, _checked(arguments)
        # database alias -> (SQL, parameters, slots)
        self._compiled: dict[str, tuple] = {}
        self._model = None

    def run(self, **values) -> int:
        if _beyond_int64(self._arguments, values):
            return self._through_the_orm(self._build(**values))
        return self._execute(values, lambda cursor: cursor.rowcount)

    def _execute(self, values: dict, answer: Callable):
        if self._model is None:
            self._model = self._queryset(self._build(**_stand_ins(self._arguments))).model
        using = router.db_for_write(self._model)
        sql_text, params, slots = self._compiled.get(using) or self._compile(using)
        params = _params(params, slots, values, self._arguments)
        connection = connections[using]
        with transaction.mark_for_rollback_on_error(using), server_bound_cursor(connection) as cursor:
            cursor.execute(sql_text, params)
            return answer(cursor)

    def _compile(self, using: str) -> tuple:
        sql_text, params = self._sql(self._build(**_stand_ins(self._arguments)), using)
        compiled = (sql_text, tuple(params), _slots(self._arguments, params, connections[using]))
        self._compiled[using] = compiled
        return compiled

    def _queryset(self, built) -> QuerySet:
        raise NotImplementedError

    def _sql(self, built, using: str) -> tuple[str, list]:
        raise NotImplementedError

    def _through_the_orm(self, built) -> int:
        raise NotImplementedError


class PreparedUpdate(_PreparedWrite):
    """An UPDATE built once (`build(**arguments)` returns the queryset and its `update()` values); run → rows changed.

    `returning`: columns (field names) `run_returning` reads back from the rows changed, as they are
    after the update, in the same statement (RETURNING: PostgreSQL, and SQLite from 3.35).
    """

    def __init__(self, build: Callable, *, returning: tuple[str, ...] = (), **arguments: type):
        super().__init__(build, **arguments)
        self._returning = returning

    def run_returning(self, **values) -> list[tuple]:
        """The `returning` columns of each row changed, as the update left them."""
        if not self._returning:
            raise ImproperlyConfigured("This prepared update was built without `returning`.")
        if _beyond_int64(self._arguments, values):
            return []  # no row has such an id: nothing changes (the ORM would say 0 rows)
        return self._execute(values, lambda cursor: [tuple(row) for row in cursor.fetchall()])

    def _queryset(self, built) -> QuerySet:
        return built[0]

    def _sql(self, built, using: str) -> tuple[str, list]:
        queryset, changes = built
        query = queryset.query.chain(sql.UpdateQuery)
        query.add_update_values(changes)
        sql_text, params = query.get_compiler(using).as_sql()
        if query.related_updates:
            raise ImproperlyConfigured("A prepared update changes one table.")
        if self._returning:
            quote = connections[using].ops.quote_name
            columns = [quote(queryset.model._meta.get_field(name).column) for name in self._returning]
            sql_text = f"{sql_text} RETURNING {', '.join(columns)}"
        return sql_text, params

    def _through_the_orm(self, built) -> int:
        queryset, changes = built
        return queryset.update(**changes)


class PreparedDelete(_PreparedWrite):
    """A DELETE built once (`build(**arguments)` returns the queryset to delete); run → rows deleted.

    Only for a model nothing refers to with a cascade and no signals (Django's own fast delete, one
    statement); checked when it is compiled.
    """

    def _queryset(self, built) -> QuerySet:
        return built

    def _sql(self, queryset, using: str) -> tuple[str, list]:
        from django.db.models.deletion import Collector

        if not Collector(using=using, origin=queryset).can_fast_delete(queryset):
            raise ImproperlyConfigured(f"A prepared delete needs a fast delete: {queryset.model.__name__} has dependents.")
        return queryset.query.chain(sql.DeleteQuery).get_compiler(using).as_sql()

    def _through_the_orm(self, queryset) -> int:
        return queryset.delete()[0]


# --- INSERT of new rows, compiled once per model and row count ---------------------------------------------

# Up to this many rows go in one compiled statement; more go through bulk_create.
INSERT_ROWS_MAX = 8
# (model, database alias, rows) -> (SQL, fields in order), or None where the ORM must do it.
_INSERTS: dict[tuple[type, str, int | str], tuple[str, list] | None] = {}


def insert_row(obj):
    """Insert a new model instance as `Model.objects.create` does, with the INSERT compiled once per model.

    Values are prepared as Django prepares them (`pre_save`, `get_db_prep_save`), the new id read
    back with RETURNING. Signals are not sent: the project has no receivers (STYLE: no signals for
    business logic). An instance the compiled statement cannot take (its id already set, an
    expression as a value, a parent model, a database that cannot return the id) goes through
    `save(force_insert=True)` instead. Returns the instance.
    """
    insert_rows([obj])
    return obj


def insert_rows(objs: list) -> list:
    """`insert_row` for a few new instances of one model in one statement (`bulk_create` past INSERT_ROWS_MAX)."""
    if not objs:
        return objs
    model = type(objs[0])
    using = router.db_for_write(model, instance=objs[0])
    connection = connections[using]
    key = (model, using, len(objs))
    if key not in _INSERTS:
        _INSERTS[key] = _insert_statement(model, objs, using) if len(objs) <= INSERT_ROWS_MAX else None
    statement = _INSERTS[key]
    values = None
    if statement is not None and all(obj.pk is None for obj in objs):
        for obj in objs:
            obj._prepare_related_fields_for_save(operation_name="save")
        values = [[field.pre_save(obj, True) for field in statement[1]] for obj in objs]
    if values is None or any(hasattr(value, "resolve_expression") for row in values for value in row):
        if len(objs) == 1:
            objs[0].save(force_insert=True, using=using)
            return objs
        return model._default_manager.using(using).bulk_create(objs)
    params = [field.get_db_prep_save(value, connection) for row in values for field, value in zip(statement[1], row)]
    with transaction.mark_for_rollback_on_error(using), server_bound_cursor(connection) as cursor:
        cursor.execute(statement[0], params)
        new_ids = [row[0] for row in cursor.fetchall()]
    if len(new_ids) != len(objs):
        raise DatabaseError(f"INSERT of {len(objs)} rows returned {len(new_ids)} ids.")
    for obj, new_id in zip(objs, new_ids):
        _saved_as(obj, new_id, using)
    return objs


def insert_row_unless_taken(obj):
    """`insert_row`, but None where a unique or exclusion constraint already holds such a row, not an error.

    `INSERT … ON CONFLICT DO NOTHING`: the caller's transaction goes on, with no savepoint around the
    insert to survive the refusal (a savepoint and its release are two round trips more). Any other
    failure (a check constraint, a foreign key) still raises, and the caller's transaction is then
    for rolling back. An instance the compiled statement cannot take goes through the ORM's save in
    a savepoint, and any IntegrityError there is None too.
    """
    model = type(obj)
    using = router.db_for_write(model, instance=obj)
    connection = connections[using]
    key = (model, using, "unless taken")
    if key not in _INSERTS:
        plain = _insert_statement(model, [obj], using)
        _INSERTS[key] = plain and (plain[0].replace(" RETURNING ", " ON CONFLICT DO NOTHING RETURNING ", 1), plain[1])
    statement = _INSERTS[key]
    values = None
    if statement is not None and obj.pk is None:
        obj._prepare_related_fields_for_save(operation_name="save")
        values = [field.pre_save(obj, True) for field in statement[1]]
    if values is None or any(hasattr(value, "resolve_expression") for value in values):
        try:
            with transaction.atomic(using=using):
                obj.save(force_insert=True, using=using)
        except IntegrityError:
            return None
        return obj
    params = [field.get_db_prep_save(value, connection) for field, value in zip(statement[1], values)]
    with transaction.mark_for_rollback_on_error(using), server_bound_cursor(connection) as cursor:
        cursor.execute(statement[0], params)
        row = cursor.fetchone()
    if row is None:
        return None
    _saved_as(obj, row[0], using)
    return obj


def _saved_as(obj, new_id, using: str) -> None:
    """The instance as the ORM leaves one it has just inserted: its new id, no longer adding, on `using`."""
    setattr(obj, obj._meta.pk.attname, new_id)
    obj._state.adding, obj._state.db = False, using


def insert_with_children(parent, children: list, link: str) -> None:
    """`insert_row(parent)`, then `insert_rows(children)` with each child's `link` set to it: one statement on PostgreSQL.

    A data-modifying WITH inserts the parent and hands its new id to the children's INSERT (a
    transfer and its ledger entries: one round trip, not two). Elsewhere, or where a compiled
    statement cannot take the rows, the two inserts run one after the other.
    """
    using = router.db_for_write(type(parent), instance=parent)
    connection = connections[using]
    statement = None
    if children and connection.vendor == "postgresql" and parent.pk is None and all(c.pk is None for c in children):
        key = (type(parent), type(children[0]), link, using, len(children))
        if key not in _INSERTS_WITH_CHILDREN:
            _INSERTS_WITH_CHILDREN[key] = _with_children_statement(type(parent), children, link, using)
        statement = _INSERTS_WITH_CHILDREN[key]
    values = None
    if statement is not None:
        sql_text, parent_fields, child_fields = statement
        for obj in (parent, *children):
            obj._prepare_related_fields_for_save(operation_name="save")
        values = [[field.pre_save(parent, True) for field in parent_fields]]
        values += [[field.pre_save(child, True) for field in child_fields] for child in children]
    if values is None or any(hasattr(value, "resolve_expression") for row in values for value in row):
        insert_row(parent)
        for child in children:
            setattr(child, link, parent)
        insert_rows(children)
        return
    fields_of_rows = [parent_fields] + [child_fields] * len(children)
    params = [field.get_db_prep_save(value, connection)
              for fields, row in zip(fields_of_rows, values) for field, value in zip(fields, row)]
    with transaction.mark_for_rollback_on_error(using), server_bound_cursor(connection) as cursor:
        cursor.execute(sql_text, params)
        rows = cursor.fetchall()
    if len(rows) != len(children):
        raise DatabaseError(f"INSERT of {len(children)} rows returned {len(rows)} ids.")
    _saved_as(parent, rows[0][1], using)
    for child, (child_id, _) in zip(children, rows):
        setattr(child, link, parent)
        _saved_as(child, child_id, using)


# (parent model, child model, link, database alias, children) -> (SQL, parent's fields, child's fields), or None.
_INSERTS_WITH_CHILDREN: dict[tuple, tuple[str, list, list] | None] = {}


def _with_children_statement(parent_model, children: list, link: str, using: str) -> tuple[str, list, list] | None:
    child_model = type(children[0])
    parent_statement = _insert_statement(parent_model, [parent_model()], using)
    child_statement = _insert_statement(child_model, children, using)
    link_field = child_model._meta.get_field(link)
    if parent_statement is None or child_statement is None or link_field.related_model is not parent_model:
        return None
    quote = connections[using].ops.quote_name
    child_fields = [field for field in child_statement[1] if field is not link_field]
    parent_pk = quote(parent_model._meta.pk.column)
    row = "((SELECT " + parent_pk + " FROM parent), " + ", ".join(["%s"] * len(child_fields)) + ")"
    columns = ", ".join(quote(field.column) for field in (link_field, *child_fields))
    sql_text = (f"WITH parent AS ({parent_statement[0]}) "
                f"INSERT INTO {quote(child_model._meta.db_table)} ({columns}) VALUES {', '.join([row] * len(children))} "
                f"RETURNING {quote(child_model._meta.pk.column)}, {quote(link_field.column)}")
    return sql_text, parent_statement[1], child_fields


def _insert_statement(model, objs: list, using: str) -> tuple[str, list] | None:
    meta, connection = model._meta, connections[using]
    if meta.parents or meta.auto_field is None or meta.db_returning_fields != [meta.auto_field]:
        return None
    if not (connection.features.can_return_columns_from_insert
            and (len(objs) == 1 or connection.features.can_return_rows_from_bulk_insert)):
        return None
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field and not field.generated]
    if any(hasattr(field, "get_placeholder") for field in fields):
        return None
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql_text = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
                f"VALUES {', '.join([row] * len(objs))} RETURNING {quote(meta.auto_field.column)}")
    return sql_text, fields


# --- UPDATE of one row's fields (Model.save(update_fields=…)), compiled once per model and field list ---------

# (model, field names, database alias) -> (SQL, fields), or None where the ORM's own save must do it.
_UPDATES: dict[tuple[type, tuple[str, ...], str], tuple[str, list] | None] = {}


def update_row(obj, update_fields) -> None:
    """`obj.save(update_fields=…)` with the UPDATE compiled once per model and field list; no signals.

    Values are prepared as Django prepares them (`pre_save`, so `auto_now` stamps; `get_db_prep_save`).
    Like save, a row that is not there raises DatabaseError. A field with its own placeholder, or an
    expression as a value, goes through `save(update_fields=…)` instead.
    """
    model = type(obj)
    using = obj._state.db or router.db_for_write(model, instance=obj)
    names = tuple(update_fields)
    key = (model, names, using)
    if key not in _UPDATES:
        _UPDATES[key] = _update_statement(model, names, using)
    statement = _UPDATES[key]
    values = None if statement is None else [field.pre_save(obj, False) for field in statement[1]]
    if values is None or any(hasattr(value, "resolve_expression") for value in values):
        obj.save(update_fields=names, using=using)
        return
    connection = connections[using]
    params = [field.get_db_prep_save(value, connection) for field, value in zip(statement[1], values)]
    params.append(model._meta.pk.get_db_prep_value(obj.pk, connection))
    with transaction.mark_for_rollback_on_error(using), server_bound_cursor(connection) as cursor:
        cursor.execute(statement[0], params)
        if cursor.rowcount == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")


def update_rows(objs: list, update_fields) -> None:
    """`update_row` for a few instances of one model in one UPDATE (a transfer's two wallets: one round trip).

    Each field is set with `CASE pk WHEN … THEN … END`, which both PostgreSQL and SQLite take;
    on PostgreSQL each value is cast to its column's type, as a bound parameter has none. Refuses,
    as `update_row` does, when a row is not there. Falls back to `update_row` one by one where
    the compiled statement cannot take the fields or values.
    """
    if len(objs) < 2:
        for obj in objs:
            update_row(obj, update_fields)
        return
    model = type(objs[0])
    using = objs[0]._state.db or router.db_for_write(model, instance=objs[0])
    names = tuple(update_fields)
    key = (model, names, using, len(objs))
    if key not in _UPDATES_MANY:
        _UPDATES_MANY[key] = _update_many_statement(model, names, using, len(objs))
    statement = _UPDATES_MANY[key]
    values = None if statement is None else [[field.pre_save(obj, False) for field in statement[1]] for obj in objs]
    if (values is None or len({obj.pk for obj in objs}) != len(objs)
            or any(hasattr(value, "resolve_expression") for row in values for value in row)):
        for obj in objs:
            update_row(obj, update_fields)
        return
    connection = connections[using]
    pks = [model._meta.pk.get_db_prep_value(obj.pk, connection) for obj in objs]
    params = []
    for column, field in enumerate(statement[1]):
        for pk, row in zip(pks, values):
            params += [pk, field.get_db_prep_save(row[column], connection)]
    params += pks
    with transaction.mark_for_rollback_on_error(using), server_bound_cursor(connection) as cursor:
        cursor.execute(statement[0], params)
        if cursor.rowcount != len(objs):
            raise DatabaseError(f"UPDATE of {len(objs)} rows affected {cursor.rowcount}.")


# (model, field names, database alias, number of rows) -> (SQL, fields), or None where update_row must do it.
_UPDATES_MANY: dict[tuple[type, tuple[str, ...], str, int], tuple[str, list] | None] = {}


def _update_many_statement(model, names: tuple[str, ...], using: str, rows: int) -> tuple[str, list] | None:
    single = _update_statement(model, names, using)
    if single is None:
        return None
    meta, connection = model._meta, connections[using]
    quote, pk = connection.ops.quote_name, connection.ops.quote_name(meta.pk.column)
    cast = connection.vendor == "postgresql"
    assignments = []
    for field in single[1]:
        value = f"CAST(%s AS {field.db_type(connection)})" if cast else "%s"
        cases = " ".join([f"WHEN %s THEN {value}"] * rows)
        assignments.append(f"{quote(field.column)} = CASE {pk} {cases} END")
    placeholders = ", ".join(["%s"] * rows)
    return (f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {pk} IN ({placeholders})",
            single[1])


def _update_statement(model, names: tuple[str, ...], using: str) -> tuple[str, list] | None:
    meta, connection = model._meta, connections[using]
    fields = [meta.get_field(name) for name in names]
    if meta.parents or any(not field.concrete or field.primary_key or hasattr(field, "get_placeholder")
                           for field in fields):
        return None
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s", fields
