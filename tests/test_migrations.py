"""The Alembic migrations and the ORM models describe the same schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.models import Base


def _diff(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return diff


def test_models_match_migrations_on_postgres(postgres_url: str) -> None:
    assert _diff(postgres_url) == []


def test_models_match_migrations_on_sqlite(sqlite_url: str) -> None:
    assert _diff(sqlite_url) == []


def test_every_model_table_exists(database_url: str) -> None:
    engine = create_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
