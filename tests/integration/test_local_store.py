"""The local store (FerretDB on the project's PostgreSQL, `tools/localpg.py`): an index made through the
MongoDB protocol gets a GIN twin that can serve FerretDB's equality filters and keeps no pending list;
FerretDB's own btree index is left unmaintained unless it is unique, and stays listed and droppable through
the protocol; a collection loaded in bulk soon gets the statistics that keep an unselective twin out of its
plans; `$in` of plain values is pushed down to PostgreSQL and answers as in MongoDB; a delete of a string
deletes what MongoDB deletes. And FerretDB's own tests
of its document codec and of the SQL it makes pass on the copy the build patches.

Only where `make infra-up` started that PostgreSQL: against a real MongoDB there is nothing to check."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from tests.conftest import eventually
from tests.servers import Servers

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "tools"))  # infra.py and localpg.py run as scripts side by side
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "tools"))


@pytest.fixture
def localpg(servers: Servers) -> tuple[ModuleType, Path]:
    infra, pg = _tool("infra"), _tool("localpg")
    if not pg.answers(infra.PG_DATA):
        pytest.skip(f"no local PostgreSQL under {infra.PG_DATA} (the store is {servers.mongo_url})")
    return pg, infra.PG_DATA


def _sql(localpg: tuple[ModuleType, Path], query: str) -> list[list[str]]:
    pg, data = localpg
    done = pg.psql(data, pg.DATABASE, query)
    assert done.returncode == 0, done.stderr
    return [line.split("|") for line in done.stdout.splitlines() if line]


def _twins(localpg: tuple[ModuleType, Path], schema: str) -> list[list[str]]:
    """(index, table, its expression, its storage options) of every GIN twin in a FerretDB database."""
    return _sql(
        localpg,
        "SELECT c.relname, i.indrelid::regclass, pg_get_indexdef(i.indexrelid, 1, false), "
        "coalesce(array_to_string(c.reloptions, ','), '') "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{schema}' AND c.relname LIKE 'gin\\_%' ORDER BY 1",
    )


async def test_an_index_gets_a_twin_without_a_pending_list_that_serves_equality(
    localpg: tuple[ModuleType, Path], mongo_db: AsyncDatabase[Any]
) -> None:
    col = mongo_db["hooks"]
    await col.insert_many([{"_id": f"w{i}", "entity_id": f"e{i % 50}"} for i in range(500)])
    await col.create_index([("entity_id", 1)])
    assert await col.count_documents({"entity_id": "e7"}) == 10

    twins = {expr: (name, table, options) for name, table, expr, options in _twins(localpg, mongo_db.name)}
    entity = twins.get("((_jsonb -> 'entity_id'::text))")
    assert entity is not None, f"no GIN twin of entity_id among {sorted(twins)}"
    name, table, options = entity
    assert options == "fastupdate=off"

    # FerretDB's pushed-down filter for {"entity_id": "e7"}; the plan may use the twin for it.
    query = f"SELECT _jsonb FROM {table} WHERE _jsonb -> 'entity_id' @> '\"e7\"'"
    plan = _sql(localpg, f"SET enable_seqscan = off; EXPLAIN {query}")
    assert any(name in line[0] for line in plan), plan


def _btrees(localpg: tuple[ModuleType, Path], schema: str) -> dict[str, tuple[bool, bool]]:
    """Each of FerretDB's own (btree) indexes in a database: its expression -> (unique, maintained)."""
    rows = _sql(
        localpg,
        "SELECT pg_get_indexdef(i.indexrelid), i.indisunique, i.indisready AND i.indisvalid "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{schema}' AND am.amname = 'btree' AND c.relname NOT LIKE '\\_ferretdb%'",
    )
    return {
        definition.split(" USING btree ")[1]: (unique == "t", ready == "t")
        for definition, unique, ready in rows
    }


async def test_only_unique_btree_indexes_are_maintained_and_all_stay_listed_and_droppable(
    localpg: tuple[ModuleType, Path], mongo_db: AsyncDatabase[Any]
) -> None:
    col = mongo_db["hooks"]
    await col.insert_many([{"_id": f"w{i}", "entity_id": f"e{i % 5}", "at": i, "key": i} for i in range(50)])
    await col.create_index([("entity_id", 1), ("at", 1)], name="by_entity")
    await col.create_index([("key", 1)], name="by_key", unique=True)

    assert _btrees(localpg, mongo_db.name) == {
        "(((_jsonb -> '_id'::text)))": (True, True),
        "(((_jsonb -> 'entity_id'::text)), ((_jsonb -> 'at'::text)))": (False, False),
        "(((_jsonb -> 'key'::text)))": (True, True),
    }
    # What a user of the MongoDB protocol sees is unchanged: answers, sorts, uniqueness, the index list.
    await col.insert_one({"_id": "w50", "entity_id": "e1", "at": 50, "key": 50})
    newest = [d["_id"] async for d in col.find({"entity_id": "e1"}).sort("at", -1).limit(2)]
    assert newest == ["w50", "w46"]
    with pytest.raises(DuplicateKeyError):
        await col.insert_one({"_id": "w51", "key": 7})
    assert {ix["name"] async for ix in await col.list_indexes()} == {"_id_", "by_entity", "by_key"}
    await col.drop_index("by_entity")
    assert {ix["name"] async for ix in await col.list_indexes()} == {"_id_", "by_key"}
    assert "(((_jsonb -> 'entity_id'::text)), ((_jsonb -> 'at'::text)))" not in _btrees(
        localpg, mongo_db.name
    )


async def test_infra_up_brings_indexes_made_before_to_the_rules(
    localpg: tuple[ModuleType, Path], mongo_db: AsyncDatabase[Any]
) -> None:
    col = mongo_db["hooks"]
    await col.insert_one({"_id": "w1", "entity_id": "e1"})
    await col.create_index([("entity_id", 1)])
    twins = _twins(localpg, mongo_db.name)
    assert twins
    for name, *_ in twins:  # as twins made before
        _sql(localpg, f'ALTER INDEX "{mongo_db.name}".{name} SET (fastupdate = on)')
    _sql(  # and FerretDB's index as it was made before
        localpg,
        "UPDATE pg_index i SET indisready = true, indisvalid = true FROM pg_namespace n, pg_class c "
        f"WHERE c.oid = i.indexrelid AND n.oid = c.relnamespace AND n.nspname = '{mongo_db.name}'",
    )
    assert {options for *_, options in _twins(localpg, mongo_db.name)} == {"fastupdate=on"}
    assert _btrees(localpg, mongo_db.name)["(((_jsonb -> 'entity_id'::text)))"] == (False, True)

    pg, data = localpg
    pg.prepare_database(data)  # what `make infra-up` runs on a server that is already up

    assert {options for *_, options in _twins(localpg, mongo_db.name)} == {"fastupdate=off"}
    assert _btrees(localpg, mongo_db.name) == {
        "(((_jsonb -> '_id'::text)))": (True, True),
        "(((_jsonb -> 'entity_id'::text)))": (False, False),
    }


async def test_a_bulk_loaded_collection_is_analyzed_soon_and_its_plans_skip_the_unselective_twin(
    localpg: tuple[ModuleType, Path], mongo_db: AsyncDatabase[Any]
) -> None:
    col = mongo_db["deliveries"]
    await col.create_index([("webhook_id", 1), ("hour", 1)])
    await col.create_index([("status", 1)])
    docs = [
        {
            "_id": f"d{i}",
            "webhook_id": f"w{i % 100}",
            "hour": f"h{i % 24}",
            "status": "failed" if i % 10 else "ok",
        }
        for i in range(5000)
    ]
    await col.insert_many(docs)
    table = _sql(
        localpg,
        f"SELECT '\"{mongo_db.name}\".' || relname FROM pg_stat_user_tables "
        f"WHERE schemaname = '{mongo_db.name}' AND relname LIKE 'deliveries%'",
    )[0][0]

    def analyzed() -> bool:
        return _sql(
            localpg,
            f"SELECT last_autoanalyze IS NOT NULL FROM pg_stat_user_tables WHERE relid = '{table}'::regclass",
        ) == [["t"]]

    # autovacuum_naptime 10 s: the launcher's next look analyzes it (PostgreSQL's default: every 60 s)
    await eventually(analyzed, timeout=40, interval=0.5, what="autovacuum to analyze the loaded collection")
    plan = _sql(
        localpg,
        f"EXPLAIN SELECT _jsonb FROM {table} WHERE _jsonb -> 'webhook_id' @> '\"w7\"' "
        "AND _jsonb -> 'hour' @> '\"h7\"' AND _jsonb -> 'status' @> '\"failed\"'",
    )
    index_conditions = [line[0] for line in plan if "Index Cond" in line[0]]
    assert index_conditions, plan
    assert not any("status" in line for line in index_conditions), plan


IN_DOCS = [
    {"_id": 1, "v": "a"},
    {"_id": 2, "v": "b"},
    {"_id": 3, "v": ["x", "a"]},
    {"_id": 4, "v": 7},
    {"_id": 5, "v": 7.0},
    {"_id": 6},
    {"_id": 7, "v": None},
    {"_id": 8, "v": "c"},
    {"_id": 9, "v": {"a": 1}},
    {"_id": 10, "v": True},
    {"_id": 11, "v": 2**60},  # beyond a double's exact integers: FerretDB's equality pushes down a range
]


@pytest.mark.parametrize(
    ("query", "ids", "pushed_down"),
    [
        ({"v": {"$in": ["a", "b"]}}, [1, 2, 3], True),  # an array holding a value matches, as in MongoDB
        ({"v": {"$in": [7]}}, [4, 5], True),
        ({"v": {"$in": ["c", 7, True]}}, [4, 5, 8, 10], True),
        ({"v": {"$in": [2**60]}}, [11], True),
        ({"_id": {"$in": [1, 2, 99]}}, [1, 2], True),
        ({"v": {"$in": ["a", None]}}, [1, 3, 6, 7], False),  # null matches a missing field: not pushed down
        ({"v": {"$in": [{"a": 1}]}}, [9], False),
        ({"v": {"$in": []}}, [], False),
    ],
)
async def test_in_of_plain_values_is_pushed_down_and_answers_as_mongodb_does(
    localpg: tuple[ModuleType, Path],
    mongo_db: AsyncDatabase[Any],
    query: dict[str, Any],
    ids: list[int],
    pushed_down: bool,
) -> None:
    """`$in` goes to PostgreSQL as an OR of equalities (infra/ferretdb/patches/query_in.go) only where that
    returns every document `$in` matches; FerretDB then filters as before, so the answer is MongoDB's."""
    col = mongo_db["in_pushdown"]
    await col.insert_many(IN_DOCS)
    assert sorted([d["_id"] async for d in col.find(query)]) == ids
    assert await col.count_documents(query) == len(ids)
    explained = await mongo_db.command("explain", {"find": col.name, "filter": query})
    assert explained["filterPushdown"] is pushed_down


DELETE_DOCS = [
    {"_id": 1, "hour": "h1", "n": 1, "tag": "a"},
    {"_id": 2, "hour": "h1", "n": 2, "tag": "b"},
    {"_id": 3, "hour": ["h0", "h1"], "tag": "a"},  # an array holding the string matches, as in MongoDB
    {"_id": 4, "hour": "h2"},
    {"_id": 5},
    {"_id": 6, "hour": {"h1": 1}},
    {"_id": 7, "hour": [{"x": "h1"}, "h0"]},  # an array holding a document holding it does not
    {"_id": 8, "hour": "H1"},
    {"_id": 9, "hour": None},
    {"_id": 10, "hour": "h1", "tag": ["z", "a"]},
]


@pytest.mark.parametrize(
    ("kind", "query", "left"),
    [
        ("many", {"hour": "h1"}, [4, 5, 6, 7, 8, 9]),
        ("many", {"hour": "nowhere"}, list(range(1, 11))),
        ("many", {"hour": "h1", "tag": "a"}, [2, 4, 5, 6, 7, 8, 9]),  # every key holds its string
        (
            "many",
            {"hour.h1": 1},
            [1, 2, 3, 4, 5, 7, 8, 9, 10],
        ),  # a dotted key: read and filtered, as upstream
        ("many", {"hour": "h1", "n": 1}, [2, 3, 4, 5, 6, 7, 8, 9, 10]),  # not only strings: read and filtered
        ("many", {"hour": {"$eq": "h1"}}, [4, 5, 6, 7, 8, 9]),
        ("one", {"hour": "h1"}, [2, 3, 4, 5, 6, 7, 8, 9, 10]),  # one document: the first, read and filtered
    ],
)
async def test_a_delete_of_a_string_deletes_as_mongodb_does(
    localpg: tuple[ModuleType, Path],
    mongo_db: AsyncDatabase[Any],
    kind: str,
    query: dict[str, Any],
    left: list[int],
) -> None:
    """`{key: "string", ...}` deletes the documents holding the strings in one SQL statement, without
    reading them (infra/ferretdb/patches/delete_equal.go), then those with an array holding one the upstream
    way: together, what MongoDB deletes, and the count it reports."""
    col = mongo_db["delete_equal"]
    await col.insert_many(DELETE_DOCS)
    delete = col.delete_many if kind == "many" else col.delete_one
    done = await delete(query)
    assert done.deleted_count == len(DELETE_DOCS) - len(left)
    assert sorted([d["_id"] async for d in col.find()]) == left


async def test_a_delete_of_a_string_leaves_other_types_written_as_that_string(
    localpg: tuple[ModuleType, Path], mongo_db: AsyncDatabase[Any]
) -> None:
    """FerretDB stores an ObjectId (and binary data, a regular expression) as a JSON string too: the
    statement deletes only what its schema says is a string, so the ObjectId stays."""
    col = mongo_db["delete_equal_types"]
    oid = ObjectId()
    await col.insert_many([{"_id": 1, "k": oid}, {"_id": 2, "k": str(oid)}, {"_id": 3, "k": [str(oid)]}])
    done = await col.delete_many({"k": str(oid)})
    assert done.deleted_count == 2
    assert [d["_id"] async for d in col.find()] == [1]
    assert (await col.find_one({"_id": 1}) or {})["k"] == oid


def _ferretdb_go_test(package: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`go test` of one of FerretDB's packages in the module copy `make infra-up` built and patched."""
    infra = _tool("infra")
    modfile = infra.INFRA / "build" / "ferretdb" / "go.mod"
    if not modfile.is_file() or shutil.which("go") is None:
        pytest.skip(f"FerretDB was not built here ({modfile} or Go missing)")
    return subprocess.run(
        ["go", "test", "-count=1", f"-modfile={modfile}", *args, f"{infra.FERRET_MODULE}/{package}"],
        cwd=infra.FERRET_SRC,
        env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ferretdbs_own_codec_tests_pass_on_the_patched_codec() -> None:
    """FerretDB's sjson tests (every BSON type both ways, truncated input, trailing data, unknown fields) run
    against the module copy `make infra-up` built, whose sjson decodes through
    infra/ferretdb/patches/sjson_json.go."""
    done = _ferretdb_go_test("internal/handler/sjson")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ok" in done.stdout


def test_ferretdbs_own_query_tests_pass_with_in_pushed_down() -> None:
    """FerretDB's tests of the SQL it makes from filters, sorts and limits, and ours of `$in`
    (infra/ferretdb/patches/query_in_test.go), on the patched copy. The rest of that package needs a
    PostgreSQL on its own port, so only these run."""
    done = _ferretdb_go_test(
        "internal/backends/postgresql", "-v", "-run", "^(TestPrepare|TestFilterIn|TestDeleteStringEqual)"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = {line.split()[2] for line in done.stdout.splitlines() if line.startswith("--- PASS: Test")}
    ours = {"TestPrepareWhereClauseIn", "TestFilterInBound", "TestDeleteStringEqualSQL"}
    assert {"TestPrepareWhereClause", *ours} <= ran, done.stdout
