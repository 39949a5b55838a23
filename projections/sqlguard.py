"""A minimal, conservative check and rewrite of analysts' SQL (pure).

Accepted: one ``SELECT`` or ``WITH ... SELECT`` statement (a trailing ``;`` is allowed). Refused:
quoted identifiers, any statement keyword that writes or changes settings, database qualifiers
(``system``, ``information_schema``, ``main`` ...), table functions, and any name of a stored table
that is not a granted view. Each granted view name is rewritten to the filtered/masked view that
stands for it, so a query cannot reach unfiltered rows by naming the table. The store adds its
own read-only guard on top (``readonly=1`` in chDB, ``PRAGMA query_only`` in SQLite).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from hub.errors import InvalidInput

_TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?\*/)
      |(?P<string>'(?:[^'\\]|\\.|'')*')
      |(?P<quoted>"[^"]*"|`[^`]*`|\[[^\]]*\])
      |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      |(?P<other>\S)""",
    re.S | re.X,
)

FORBIDDEN_WORDS = frozenset(
    [
        "insert",
        "update",
        "delete",
        "merge",
        "upsert",
        "replace",
        "create",
        "alter",
        "drop",
        "truncate",
        "rename",
        "exchange",
        "attach",
        "detach",
        "grant",
        "revoke",
        "set",
        "settings",
        "use",
        "optimize",
        "system",
        "kill",
        "pragma",
        "vacuum",
        "reindex",
        "analyze",
        "into",
        "outfile",
        "infile",
        "backup",
        "restore",
        "install",
        "load",
        "copy",
        "call",
        "execute",
        "exec",
        "information_schema",
        "pg_catalog",
        "main",
        "temp",
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
    ]
)
TABLE_FUNCTIONS = frozenset(
    [
        "file",
        "url",
        "s3",
        "s3cluster",
        "hdfs",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "sqlite",
        "odbc",
        "jdbc",
        "mongodb",
        "redis",
        "executable",
        "input",
        "python",
        "view",
        "merge",
        "dictionary",
        "generaterandom",
        "azureblobstorage",
        "iceberg",
        "deltalake",
        "hudi",
        "gcs",
        "cosn",
        "oss",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "readfile",
        "read_csv",
        "read_parquet",
        "pg_read_file",
        "load_extension",
        "fts3",
        "fts4",
        "fts5",
    ]
)


def check_and_rewrite(
    sql: str, rename: Mapping[str, str], forbidden_names: Iterable[str] = ()
) -> str:
    """Return ``sql`` with each granted view name replaced; raise ``InvalidInput`` otherwise."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInput("The query is empty: send one SELECT statement.", code="invalid_query")
    tokens = [(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN.finditer(sql)]
    code = [t for t in tokens if t[0] != "comment"]
    while code and code[-1][1] == ";":
        code.pop()
    if not code or code[0][1].lower() not in ("select", "with"):
        raise InvalidInput(
            "Only read-only queries are allowed: send a single SELECT (or WITH ... SELECT).",
            code="query_not_select",
        )
    forbidden = {n.lower() for n in forbidden_names} - {n.lower() for n in rename}
    lower_rename = {k.lower(): v for k, v in rename.items()}
    out: list[str] = []
    last = 0
    for i, (kind, text, start, end) in enumerate(code):
        word = text.lower()
        if kind == "other" and text == ";":
            raise InvalidInput(
                "Only one statement per query is allowed; remove the extra ';'.",
                code="query_not_select",
            )
        if kind == "quoted":
            raise InvalidInput(
                f"Quoted identifiers ({text}) are not allowed in queries; use plain names.",
                code="query_refused",
            )
        if kind != "word":
            continue
        nxt = code[i + 1][1] if i + 1 < len(code) else ""
        prev = code[i - 1][1] if i else ""
        if word in FORBIDDEN_WORDS:
            raise InvalidInput(
                f"The query uses {text!r}, which is not allowed: queries may only read the "
                "projection views with a SELECT.",
                code="query_refused",
            )
        if nxt == "(" and word in TABLE_FUNCTIONS:
            raise InvalidInput(
                f"Table function {text}() is not allowed: query the projection views.",
                code="query_refused",
            )
        if word in forbidden:
            raise InvalidInput(
                f"{text!r} is not a view you may query; ask `hub query --views` for the list.",
                code="query_refused",
            )
        if nxt == "." and prev != "." and _is_table_position(code, i):
            raise InvalidInput(
                f"Qualified table name {text}.… is not allowed: name the views without a "
                "database or schema (qualify columns through an alias: FROM ohlcv_1m AS o).",
                code="query_refused",
            )
        if word in lower_rename and prev != "." and nxt != "(":
            out.append(sql[last:start])
            out.append(lower_rename[word])
            last = end
    out.append(sql[last : code[-1][3]])
    return "".join(out)


def _is_table_position(code: list[tuple[str | None, str, int, int]], i: int) -> bool:
    """True when the word at ``i`` follows FROM/JOIN (or a comma in a FROM list)."""
    j = i - 1
    while j >= 0 and code[j][1] in (",",):
        j -= 1
    return j >= 0 and code[j][1].lower() in ("from", "join")
