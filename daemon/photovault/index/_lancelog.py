"""Quiet LanceDB's Rust logger before lancedb is first imported.

lancedb logs through env_logger at WARN by default, and its optimize of an IVF
index whose partitions were split or joined writes "partition index is N but
the number of partitions is M, skip loading it" thousands of times per run (a
known, harmless lance issue: lance-format/lance#5312) into vaultd's journal.
Errors still show; a LANCEDB_LOG the operator sets wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("LANCEDB_LOG", "error")
