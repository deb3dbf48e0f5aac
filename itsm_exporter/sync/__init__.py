"""The sync engine: which upstream reads a sync makes (plans), how their progress is kept (state),
and one runner per source shared by `once` and the daemon (runner)."""

from itsm_exporter.sync.plans import IncrementalPlan, Plan, plans_for
from itsm_exporter.sync.runner import LOGGED_VALUE_LIMIT, SourceRunner, SyncResult, sync_source

__all__ = ["LOGGED_VALUE_LIMIT", "IncrementalPlan", "Plan", "SourceRunner", "SyncResult", "plans_for", "sync_source"]
