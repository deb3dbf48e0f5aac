"""The local store: tickets, survey responses and sync state in one SQLite file (WAL).

schema.py holds the tables of the current version (derived from the declarations in records.py),
migrations.py the frozen SQL that upgrades older stores, store.py the Store itself.
"""

from itsm_exporter.store.migrations import MIGRATIONS
from itsm_exporter.store.schema import APPLICATION_ID, SCHEMA_VERSION
from itsm_exporter.store.store import Store, StoreError

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError"]
