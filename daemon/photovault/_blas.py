"""One BLAS thread for vaultd, set before numpy is first imported.

OpenBLAS otherwise starts a thread per core that busy-waits after each call;
beside onnxruntime's own threads on a 2-core NAS that made the CLIP text
encode 18 -> 22 ms at p50 and a search's p95 29 -> 36 ms (1M photos). The
matrix products vaultd does (a search's cell scan, k-means when the library
doubles) are small or in the background. An operator's own setting wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
