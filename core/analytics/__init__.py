"""Analytics engines beside the operational store: DuckDB and ClickHouse (docs/engines.md)."""

from .engines import AnalyticsEngine, ClickHouseEngine, DuckDBEngine, open_engine

__all__ = ["AnalyticsEngine", "ClickHouseEngine", "DuckDBEngine", "open_engine"]
