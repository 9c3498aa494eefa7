"""The feed as a guarded mirror of upstream V3 sources (issue 16): upstream client, ingestion checks, quarantine and
the VulnerabilityInfo resource built from OSV data."""
