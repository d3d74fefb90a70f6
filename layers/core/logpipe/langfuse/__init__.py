"""Langfuse sink: LLM-call records as generations over OTLP, with deterministic ids and a delivery ledger."""
