"""Several pcloud nodes on one PostgreSQL database and one bucket (issue 19): they start
together safely, and what one node did is seen by the others at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_DATABASE

postgresql_only = pytest.mark.skipif(
    TEST_DATABASE != "postgresql", reason="several nodes share a PostgreSQL database"
)

START_TOGETHER = """
import sys, time
from pcloud.db import open_database
from pcloud.schema import upgrade_schema
database = open_database(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every node starts at this moment
upgrade_schema(database)
"""


@postgresql_only
def test_nodes_starting_together_on_a_new_database_all_come_up(database_url):
    start_at = time.time() + 2.0
    nodes = [
        subprocess.Popen(
            [sys.executable, "-c", START_TOGETHER, database_url, str(start_at)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    failures = [node.communicate(timeout=60)[1] for node in nodes if node.wait(60) != 0]
    assert failures == []
