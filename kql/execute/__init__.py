"""Execution: the httpx clients (auth, pagination, retries, origin pinning), the plan runner,
merging and dedupe. Runs plans; knows no KQL syntax."""
