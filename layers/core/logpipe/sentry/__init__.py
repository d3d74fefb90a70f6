"""Sentry mapping: log records to Sentry event payloads (plain dicts; no SDK import, no network)."""
