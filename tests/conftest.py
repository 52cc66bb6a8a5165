from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowscope.store.database import Database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "spans.duckdb"


@pytest.fixture
def database(db_path: Path) -> Iterator[Database]:
    db = Database(db_path)
    yield db
    db.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ instead of comparing with them",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
