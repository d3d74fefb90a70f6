"""logpipe: the shared core of the PACS log pipeline (a Lambda layer).

decode -> records -> classify -> scrub -> metrics, with sinks and parking behind small Protocols.
"""

__version__ = "0.1.0"
