"""vaultd's pyarrow never loads pandas (photovault._nopandas), and pandas still imports."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, tempfile
import numpy as np
{load}
import lancedb, pyarrow as pa
import photovault.app
db = lancedb.connect(tempfile.mkdtemp())
vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(80, dtype=np.float32)), 8)
table = db.create_table("t", pa.table({{"id": np.arange(10), "v": vectors}}))
table.add([{{"id": 11, "v": [0.5] * 8}}])
table.search(np.ones(8, dtype=np.float32), vector_column_name="v").limit(3).to_list()
table.delete("id = 2")
print("pandas" in sys.modules)
import pandas
print(pandas.DataFrame({{"a": [1]}}).shape)
"""


def run(load: str) -> list[str]:
    code = CODE.format(load=load)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()


def test_pyarrow_and_lancedb_work_without_loading_pandas() -> None:
    loaded, shape = run(
        "from photovault._nopandas import load_pyarrow_without_pandas\n"
        "load_pyarrow_without_pandas()"
    )
    assert loaded == "False"
    assert shape == "(1, 1)"  # a later import (deepface's) still gets pandas


def test_without_it_pyarrow_loads_pandas() -> None:
    # What the module exists for: lancedb's import alone loads pandas through pyarrow.
    loaded, _ = run("")
    assert loaded == "True"
