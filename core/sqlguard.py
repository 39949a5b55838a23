"""The analysts' SQL, parsed and rewritten so it can only see what the decision granted (pure).

The query is parsed by sqlglot in the store's dialect (``clickhouse`` for chDB/ClickHouse,
``sqlite``, ``postgres``) and the store runs the SQL that sqlglot *generates* from the checked
tree, never the caller's text: what a comment, a quote or an escape means is decided once, by
the parser, and the generated text says exactly that tree (``guard`` re-parses it and refuses the
query when the two disagree). Checks, in order:

1. exactly one statement, a ``SELECT`` (with ``WITH``, subqueries, ``UNION``/``INTERSECT``/
   ``EXCEPT``); no ``INTO``, ``SETTINGS``, ``FORMAT``, ``FOR UPDATE``, ``SAMPLE`` or query
   parameters;
2. every table a ``FROM``/``JOIN`` names anywhere (subqueries, CTEs, joins, ``IN (SELECT ...)``)
   is a granted view, or a CTE of the query; no database or schema qualifier, no table function
   (``file()``, ``url()``, ``remote()``, ``json_each()`` ...), no ``VALUES``/``UNNEST``/
   ``FINAL`` source; a CTE may not take the name of a view or of a table the store holds;
3. functions: the standard functions sqlglot knows by type are allowed except those that read
   files (``read_csv``, ``read_parquet``) or write them; engine-specific functions (those sqlglot
   does not know) must be in ``ALLOWED_FUNCTIONS`` for the dialect: an allowlist, so
   ``load_extension``, ``readfile``, ``getSetting``, ``pg_read_file``, ``set_config``,
   ``dblink``, ``lo_import`` ... are refused by not being on it; typed functions that describe
   the engine itself (``version()``, ``currentDatabase()``, ``current_user``,
   ``sqlite_version()`` ...), PostgreSQL's bare value keywords (``user``, ``current_role``)
   and its casts that look names up in the catalogue (``'pg_authid'::regclass``, a type
   sqlglot does not know) are refused too (engine version, account and catalogue disclosure).

Then each reference to a granted view becomes a subquery over the stored table that applies the
decision's obligations: ``WHERE tenant = '<tenant>'`` (row filter) and ``NULL`` in place of each
masked column. Joins, aliases, ``*``, expressions over a column (``hex(email)``), ``ORDER BY`` or
``WHERE`` on a masked column all see only those rows and those NULLs.

The stores add their own guard on top: SQLite runs the query read-only (``PRAGMA query_only``)
with an authorizer that denies reads of any table but the granted ones and reads masked columns
as NULL; PostgreSQL in a READ ONLY transaction; chDB/ClickHouse with ``readonly = 1``. Every store
stops at ``MAX_ROWS`` result rows and after ``QUERY_SECONDS`` (``query_timeout``); chDB and
ClickHouse also at ``QUERY_MEMORY_BYTES`` of memory (``max_memory_usage``, ``query_memory_limit``;
``HUB_QUERY_MAX_MEMORY_BYTES``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from core.errors import InvalidInput
from core.ports.views import ViewGrant

Dialect = Literal["clickhouse", "sqlite", "postgres"]
DIALECTS: tuple[Dialect, ...] = ("clickhouse", "sqlite", "postgres")
MAX_ROWS = 1_000_000
# Longest a query over the views may run. The stores run it under their own lock (the
# projection runner's writes wait for it), so an unbounded cross join of a view with itself
# would stall the views of every tenant; PostgreSQL had this bound as its statement timeout.
QUERY_SECONDS = 30.0
# Most memory a ClickHouse-family query may use (its ``max_memory_usage``). chDB runs inside the
# hub's own process: an unbounded GROUP BY or arrayJoin of an analyst's would take the memory of
# the ingest, the ledger and every other request, up to the kernel's OOM kill of the hub.
QUERY_MEMORY_BYTES = 1 << 30

# Stored tables of the engines themselves: never a CTE name either.
SYSTEM_NAMES = frozenset(
    ["sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_sequence", "sqlite_stat1"]
)

# sqlglot's typed functions that touch files or the server outside the query.
_DENIED_TYPED: tuple[type[exp.Expr], ...] = (exp.ReadCSV, exp.ReadParquet, exp.ToFile)
# sqlglot's typed functions that tell the engine about itself (version, database, user, role,
# session, schema ...): what an attacker needs to pick an exploit, nothing a view's rows need.
_INTROSPECTION_NAMES = """
CurrentAccount CurrentAccountName CurrentAvailableRoles CurrentCatalog CurrentClient
CurrentDatabase CurrentIpAddress CurrentOrganizationName CurrentOrganizationUser CurrentRegion
CurrentRole CurrentRoleType CurrentSchema CurrentSchemas CurrentSecondaryRoles CurrentSession
CurrentStatement CurrentTimezone CurrentTransaction CurrentUser CurrentUserId CurrentVersion
CurrentWarehouse SessionUser
"""
_INTROSPECTION_TYPED: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name)
    for name in _INTROSPECTION_NAMES.split()
    if hasattr(exp, name)  # the names of the pinned sqlglot; absent ones cannot parse either
)
# PostgreSQL's SQL-standard value keywords written bare: sqlglot reads some as a column and
# writes them back bare, which PostgreSQL runs as the keyword (``SELECT user`` is the user).
_POSTGRES_KEYWORDS = """
user current_user session_user system_user current_role current_schema current_catalog
"""
_POSTGRES_VALUE_KEYWORDS = frozenset(_POSTGRES_KEYWORDS.split())

_COMMON = """
abs avg ceil ceiling coalesce concat count floor greatest least length lower ltrim max min
nullif round rtrim sign sqrt substr substring sum trim upper replace position exp ln log power
mod
"""
_SQLITE = """
char date datetime format glob group_concat hex ifnull iif instr julianday like likely printf
quote strftime time total typeof unicode unixepoch unlikely json json_array json_extract
json_object json_type json_valid json_array_length zeroblob
"""
_POSTGRES = """
age array_agg bool_and bool_or btrim date_part date_trunc initcap left right lpad rpad
split_part string_agg to_char to_date to_number to_timestamp jsonb_extract_path_text
json_extract_path_text percentile_cont percentile_disc stddev stddev_pop stddev_samp
variance var_pop var_samp width_bucket row_number rank dense_rank lag lead first_value
last_value ntile cume_dist percent_rank
"""
_CLICKHOUSE = """
any anylast argmax argmin avgif avgweighted corr countif covarpop covarsamp groupuniqarray
grouparray groupbitand groupbitor if multiif median quantile quantiles quantileexact
quantiletdigest stddevpop stddevsamp sumif minif maxif uniq uniqexact uniqcombined uniqhll12
varpop varsamp topk arrayjoin arraysort arraydistinct arraysum arraymin arraymax has length
empty notempty tostring todate todate32 todatetime todatetime64 todecimal32 todecimal64
todecimal128 todecimal256 tofloat32 tofloat64 toint8 toint16 toint32 toint64 touint8 touint16
touint32 touint64 tostartofminute tostartoffiveminutes tostartoffifteenminutes tostartofhour
tostartofday tostartofweek tostartofmonth tostartofquarter tostartofyear tostartofinterval
toyyyymm toyyyymmdd toyear tomonth todayofmonth todayofweek tohour tominute tosecond
tounixtimestamp tounixtimestamp64micro tounixtimestamp64milli fromunixtimestamp
fromunixtimestamp64micro fromunixtimestamp64milli formatdatetime datediff dateadd datesub
now today yesterday ifnull isnull isnotnull assumenotnull tonullable lowerutf8 upperutf8
positioncaseinsensitive startswith endswith splitbychar splitbystring arraystringconcat
roundbankers intdiv modulo plus minus multiply divide negate rownumberinblock row_number rank
dense_rank lagInFrame leadInFrame first_value last_value tuple tupleelement array
"""
ALLOWED_FUNCTIONS: dict[Dialect, frozenset[str]] = {
    "sqlite": frozenset((_COMMON + _SQLITE).split()),
    "postgres": frozenset((_COMMON + _POSTGRES).split()),
    "clickhouse": frozenset(n.lower() for n in (_COMMON + _CLICKHOUSE).split()),
}
# ClickHouse aggregate combinators: sumIf, uniqMerge, avgOrNull ... of an allowed function.
_COMBINATORS = ("if", "array", "distinct", "ornull", "ordefault", "state", "merge")
# Select arguments that write, change settings or lock: refused wherever they appear.
_REFUSED_ARGS = {
    "into": "INTO",
    "settings": "SETTINGS",
    "format": "FORMAT",
    "locks": "FOR UPDATE/SHARE",
    "sample": "SAMPLE",
    "options": "OPTION",
}


def refuse(message: str, code: str = "query_refused") -> InvalidInput:
    return InvalidInput(message, code=code)


_ENGINE_CONTEXT = re.compile(
    r"\s+In scope\b|\s+\(version\b|,?\s+while processing query\b|\s+Stack trace\b", re.I
)


def engine_message(text: str) -> str:
    """The engine's own reason a query failed, without the query it ran: the rewritten SQL
    names the stored database and tables (``hub_views.<view>``, PostgreSQL's ``hub_query``
    cursor), the caller's row filter and the engine's settings, none of them the caller's.
    Keeps ClickHouse's exception text up to its ``In scope`` part, PostgreSQL's first line."""
    found = re.search(r"DB::Exception:\s*(.*)", text, re.S)
    if found:
        text = found.group(1)
    text = _ENGINE_CONTEXT.split(text.split("\n", 1)[0], maxsplit=1)[0]
    text = text.replace('DECLARE "hub_query" CURSOR FOR ', "").replace("hub_views.", "")
    return text.strip() or "the engine gave no reason"


def query_failed(text: str) -> InvalidInput:
    """A query the engine refused, with its reason (``engine_message``)."""
    return InvalidInput(f"The query failed: {engine_message(text)}", code="query_failed")


def too_slow(seconds: float) -> InvalidInput:
    return InvalidInput(
        f"The query ran longer than {seconds:g} s and was stopped; add a WHERE, a LIMIT or an "
        "aggregate, or avoid joining a view with itself without a condition.",
        code="query_timeout",
    )


def too_much_memory(limit: int) -> InvalidInput:
    return InvalidInput(
        f"The query needed more than its memory limit of {limit:,} bytes (max_memory_usage, "
        "HUB_QUERY_MAX_MEMORY_BYTES) and was stopped; add a WHERE or a LIMIT, aggregate before "
        "collecting (groupArray, arrayJoin), or have the operator raise the limit.",
        code="query_memory_limit",
    )


def too_many_rows() -> InvalidInput:
    return InvalidInput(
        f"The query returns more than {MAX_ROWS:,} rows; add a LIMIT, a WHERE or an aggregate.",
        code="query_too_large",
    )


def parse(sql: str, dialect: Dialect) -> exp.Query:
    """The one read-only query in ``sql`` (step 1); raise ``InvalidInput`` for anything else."""
    if not isinstance(sql, str) or not sql.strip():
        raise refuse("The query is empty: send one SELECT statement.", "invalid_query")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as exc:
        first = str(exc).splitlines()[0][:300]
        raise refuse(
            f"The query could not be parsed as {dialect} SQL ({first}); send one plain SELECT.",
            "invalid_query",
        ) from exc
    if len(statements) != 1:
        raise refuse(
            "Only one statement per query is allowed; remove the extra ';' and what follows it."
            if statements
            else "The query is empty: send one SELECT statement.",
            "query_not_select",
        )
    (tree,) = statements
    if not isinstance(tree, exp.Query):
        raise refuse(
            f"Only read-only queries are allowed: send a single SELECT (or WITH ... SELECT), "
            f"not {tree.key.upper()}.",
            "query_not_select",
        )
    return tree


def views_named(sql: str, dialect: Dialect) -> set[str] | None:
    """The lower-cased table names ``sql`` reads (its CTEs excluded), or None if it does not
    parse as one query (lineage: the reads are then not known)."""
    try:
        tree = parse(sql, dialect)
    except InvalidInput:
        return None
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table)} - ctes


def guard(
    sql: str,
    dialect: Dialect,
    grants: Sequence[ViewGrant],
    stored: Callable[[str], exp.Table],
    store_tables: Iterable[str] = (),
) -> str:
    """The SQL to run for ``sql``: checked (steps 1-3), every granted view replaced by its
    filtered/masked subquery over ``stored(view name)``, generated in ``dialect``.

    ``store_tables`` are the names of every table the store holds (no CTE may take one).
    Raises ``InvalidInput`` (code ``query_not_select``, ``query_refused`` or ``invalid_query``)
    with a message that names what was refused."""
    tree = parse(sql, dialect)
    by_name = {g.name.lower(): g for g in grants}
    _check_ctes(tree, set(by_name) | {n.lower() for n in store_tables} | SYSTEM_NAMES)
    for node in list(tree.walk()):
        _check_node(node, dialect)
    for table in list(tree.find_all(exp.Table)):
        if _names_a_cte(table):
            continue
        _check_table(table, by_name)
        name = table.name.lower()
        table.replace(_restricted(by_name[name], table, stored(by_name[name].name), dialect))
    if dialect == "sqlite":
        _keep_sqlite_names(tree, sql)
    out = tree.sql(dialect=dialect, comments=False)
    again = sqlglot.parse_one(out, read=dialect).sql(dialect=dialect, comments=False)
    if again != out:  # the generated text must mean the tree that was checked
        raise refuse(
            "The query could not be rewritten unambiguously; simplify its quoting or literals.",
            "invalid_query",
        )
    return out


def _keep_sqlite_names(tree: exp.Query, sql: str) -> None:
    """SQLite names an unaliased result column by its text as written (``count(*)``); the
    generated SQL may spell it otherwise (``COUNT(*)``), so alias it to the caller's text."""
    first: exp.Expr = tree
    while isinstance(first, exp.SetOperation):
        first = first.this
    if not isinstance(first, exp.Select):
        return
    for e in list(first.expressions):
        if isinstance(e, exp.Alias | exp.Column | exp.Star):
            continue
        spots = [(n.meta["start"], n.meta["end"]) for n in e.walk() if "start" in n.meta]
        if not spots:
            continue
        start, end = min(a for a, _ in spots), max(b for _, b in spots)
        text = sql[start : end + 1]
        if any(q in text for q in "'\"`[") or "--" in text or "/*" in text:
            continue  # not worth guessing: the generated name stands
        depth = text.count("(") - text.count(")")
        i = end + 1
        while depth > 0 and i < len(sql):
            if sql[i] == ")":
                depth -= 1
            elif not sql[i].isspace():
                break
            i += 1
        if depth == 0:
            e.replace(exp.alias_(e.copy(), sql[start:i], quoted=True))


def _check_ctes(tree: exp.Expr, reserved: set[str]) -> None:
    for cte in tree.find_all(exp.CTE):
        if cte.alias_or_name.lower() in reserved:
            raise refuse(
                f"The query defines WITH {cte.alias_or_name!r}, the name of a stored table or "
                "view; give the CTE another name."
            )


def _names_a_cte(table: exp.Table) -> bool:
    """True when ``table`` names a CTE visible where it stands: one of an enclosing query's
    WITH, or an earlier one of the same WITH (itself too when RECURSIVE). A CTE name used out
    of its scope is a table name like any other (and refused unless it is a view)."""
    name = table.name.lower()
    node: exp.Expr = table
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.With) and isinstance(node, exp.CTE):
            i = parent.expressions.index(node)
            visible = parent.expressions[: i + 1 if parent.args.get("recursive") else i]
            if any(c.alias_or_name.lower() == name for c in visible):
                return True
            if parent.parent is None:
                return False
            node = parent.parent  # the query owning this WITH: its later CTEs are not visible
            continue
        with_ = parent.args.get("with_")
        if (
            isinstance(with_, exp.With)
            and node is not with_
            and any(c.alias_or_name.lower() == name for c in with_.expressions)
        ):
            return True
        node = parent
    return False


def _check_node(node: exp.Expr, dialect: Dialect) -> None:
    if isinstance(node, exp.Select | exp.SetOperation):
        for arg, words in _REFUSED_ARGS.items():
            if node.args.get(arg):
                raise refuse(
                    f"{words} is not allowed in a query: send a plain SELECT (the hub renders "
                    "the result as CSV, JSON or Parquet itself)."
                )
    if isinstance(node, exp.Placeholder | exp.Parameter):
        raise refuse(
            f"Query parameters ({node.sql(dialect=dialect)}) are not supported: write the "
            "values into the SQL as literals."
        )
    if isinstance(node, exp.From | exp.Join):
        source = node.this
        if not isinstance(source, exp.Table | exp.Subquery):
            what = "FINAL" if isinstance(source, exp.Final) else source.key.upper()
            raise refuse(
                f"{what} is not allowed as a query source: select from the projection views "
                "(ask SHOW TABLES for the list)."
            )
    if isinstance(node, exp.In) and _in_names_a_table(node, dialect):
        raise refuse(
            f"{node.sql(dialect=dialect)[:80]}: IN followed by a name reads a table; write "
            "IN (SELECT column FROM view) or IN (list of values)."
        )
    if isinstance(node, exp.Func):
        _check_function(node, dialect)
    if (
        dialect == "postgres"
        and isinstance(node, exp.Column)
        and not node.table
        and isinstance(node.this, exp.Identifier)
        and not node.this.quoted
        and node.name.lower() in _POSTGRES_VALUE_KEYWORDS
    ):
        raise _introspection(node.name)
    if dialect == "postgres" and isinstance(node, exp.DataType) and _server_type(node):
        raise _introspection(f"A cast to {node.sql(dialect=dialect)[:40]}")
    if isinstance(node, exp.Command | exp.Pragma):
        raise refuse("Only a single SELECT is allowed in a query.", "query_not_select")


def _server_type(node: exp.DataType) -> bool:
    """A PostgreSQL type whose cast looks a name up in the server's catalogue: the object
    identifier types (``regclass``, ``regrole``, ``regproc`` ...: sqlglot keeps their names as
    text) and any type sqlglot does not know (a table's row type, ``pg_lsn``, an extension's)."""
    kind = node.this
    return not isinstance(kind, exp.DataType.Type) or kind == exp.DataType.Type.USERDEFINED


def _in_names_a_table(node: exp.In, dialect: Dialect) -> bool:
    """``x IN t`` (SQLite, ClickHouse) and ``x IN (t)`` (ClickHouse) read table ``t``; sqlglot
    takes the name for a column, so the table check would not see it."""
    if node.args.get("field") is not None:
        return True
    items = node.expressions
    return dialect == "clickhouse" and len(items) == 1 and isinstance(items[0], exp.Column)


def _check_function(node: exp.Func, dialect: Dialect) -> None:
    if isinstance(node, _DENIED_TYPED):
        raise refuse(f"Function {node.sql_name()}() reads or writes files and is not allowed.")
    if isinstance(node, _INTROSPECTION_TYPED):
        raise _introspection(node.sql(dialect=dialect)[:80])
    named = (
        exp.Anonymous,
        exp.AnonymousAggFunc,
        exp.CombinedAggFunc,
        exp.ParameterizedAgg,
        exp.CombinedParameterizedAgg,
    )
    if not isinstance(node, named):
        return
    name = str(node.this)
    if name.lower() in ALLOWED_FUNCTIONS[dialect]:
        return
    if dialect == "clickhouse" and any(
        name.lower().endswith(c) and name.lower()[: -len(c)] in ALLOWED_FUNCTIONS[dialect]
        for c in _COMBINATORS
    ):
        return
    raise refuse(
        f"Function {name}() is not allowed in queries over the views (only read-only "
        f"functions on the {dialect} allowlist are); compute it another way or ask for it to "
        "be added."
    )


def _introspection(what: str) -> InvalidInput:
    return refuse(
        f"{what} describes the query engine itself (its version, database, user or session) "
        "and is not allowed in queries over the views; select the views' columns (quote a "
        'column that has such a name: "user").'
    )


def _check_table(table: exp.Table, grants: dict[str, ViewGrant]) -> None:
    if not isinstance(table.this, exp.Identifier):
        name = table.this.sql() if table.this is not None else "?"
        raise refuse(
            f"Table function {name[:80]} is not allowed: select from the projection views "
            "(ask SHOW TABLES for the list)."
        )
    if table.args.get("db") or table.args.get("catalog"):
        raise refuse(
            f"Qualified table name {table.sql()[:80]} is not allowed: name the views without a "
            "database or schema (qualify columns through an alias: FROM ohlcv_1m AS o)."
        )
    extra = [k for k, v in table.args.items() if v and k not in ("this", "alias")]
    if extra:
        raise refuse(
            f"{table.sql()[:80]} uses {', '.join(extra).upper()}, which is not allowed on a "
            "view: select from the view by name."
        )
    name = table.name.lower()
    if name not in grants:
        raise refuse(
            f"{table.name!r} is not a view you may query here; ask SHOW TABLES for the list."
        )


def _restricted(
    grant: ViewGrant, ref: exp.Table, stored: exp.Table, dialect: Dialect
) -> exp.Subquery:
    """``(SELECT cols FROM stored WHERE tenant = t) AS alias``: masked columns are NULL."""
    cols: list[exp.Expr] = []
    for c in grant.columns:
        if c in grant.masked:
            null: exp.Expr = exp.Null()
            if dialect == "clickhouse":  # a typed NULL: Arrow cannot export Nullable(Nothing)
                null = exp.cast(exp.Null(), "Nullable(String)", dialect=dialect)
            cols.append(exp.alias_(null, c, quoted=True))
        else:
            cols.append(exp.column(c, quoted=True))
    select = exp.select(*cols).from_(stored.copy())
    if grant.tenant is not None:
        select = select.where(
            exp.column("tenant", quoted=True).eq(exp.Literal.string(grant.tenant))
        )
    alias = ref.args.get("alias")
    return exp.Subquery(
        this=select,
        alias=alias.copy()
        if alias is not None
        else exp.TableAlias(this=exp.to_identifier(ref.name)),
    )
