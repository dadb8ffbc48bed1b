"""Durable state: stored responses (`previous_response_id`, `GET /v1/responses/{id}`).

SQLite in one file is the embedded default (shared by `--workers`, survives restarts); with
`state.redis_url` the records live in Redis, so that every replica sees them.
"""

from __future__ import annotations

from pathlib import Path

from llms.store.redis import RedisResponseStore
from llms.store.responses import (
    MAX_RECORD_MB,
    RETENTION_S,
    ResponseStatus,
    ResponseStore,
    ResponseTooLarge,
    StoredResponse,
    StoreUnavailable,
    is_response_id,
    new_response_id,
)
from llms.store.sqlite import MAX_TOTAL_MB, SQLiteResponseStore


def new_response_store(
    *,
    redis_url: str | None,
    sqlite_path: Path | str,
    retention_s: float = RETENTION_S,
    max_record_mb: float = MAX_RECORD_MB,
    max_total_mb: float = MAX_TOTAL_MB,
    alone: bool = False,
) -> ResponseStore:
    """Redis when there is a `redis_url` (replicas share it), else the SQLite file, written
    behind the answers when this process is `alone` on it (not one of `--workers N`)."""
    if redis_url is not None:
        return RedisResponseStore(redis_url, retention_s=retention_s, max_record_mb=max_record_mb)
    return SQLiteResponseStore(
        sqlite_path,
        retention_s=retention_s,
        max_record_mb=max_record_mb,
        max_total_mb=max_total_mb,
        write_behind=alone,
    )


__all__ = [
    "RedisResponseStore",
    "ResponseStatus",
    "ResponseStore",
    "ResponseTooLarge",
    "SQLiteResponseStore",
    "StoreUnavailable",
    "StoredResponse",
    "is_response_id",
    "new_response_id",
    "new_response_store",
]
