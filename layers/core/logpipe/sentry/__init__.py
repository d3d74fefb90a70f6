"""Errors to Sentry: event mapping (``event``, ``stacktrace``; plain dicts, no SDK) and delivery (``sink``)."""
