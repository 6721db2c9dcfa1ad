from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from photovault.models.onnxfile import lookup_tables


def _table(path: Path, name: str) -> np.ndarray:
    graph = onnx.load(str(path)).graph
    return next(numpy_helper.to_array(t) for t in graph.initializer if t.name == name)


def test_a_gather_table_is_found_with_the_offset_of_its_bytes_in_the_file(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    path = tiny_models.build_text_encoder(tmp_path / "text.onnx", dim=8)
    (table,) = lookup_tables(path, min_bytes=1024)
    assert (table.name, table.shape, table.dtype) == ("table", (49408, 8), "<f4")
    on_disk = np.fromfile(path, dtype="<f4", count=49408 * 8, offset=table.offset)
    np.testing.assert_array_equal(on_disk.reshape(49408, 8), _table(path, "table"))


def test_tables_smaller_than_asked_are_left_out(tiny_models: ModuleType, tmp_path: Path) -> None:
    path = tiny_models.build_text_encoder(tmp_path / "text.onnx", dim=8)
    assert lookup_tables(path, min_bytes=2 << 20) == []


def test_weights_of_other_operators_are_left_out(tiny_models: ModuleType, tmp_path: Path) -> None:
    path = tiny_models.build_classifier(tmp_path / "classifier.onnx", num_classes=10, side=8)
    assert lookup_tables(path, min_bytes=16) == []


def test_a_table_also_used_by_another_operator_is_left_out(tmp_path: Path) -> None:
    table = numpy_helper.from_array(np.ones((512, 8), dtype=np.float32), "table")
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["rows"]),
        helper.make_node("MatMul", ["x", "table"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "shared",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 512]),
        ],
        [
            helper.make_tensor_value_info("rows", TensorProto.FLOAT, [2, 8]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8]),
        ],
        initializer=[table],
    )
    path = tmp_path / "shared.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert lookup_tables(path, min_bytes=16) == []


def test_a_file_that_is_no_model_has_no_tables(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\xff" * 100)
    assert lookup_tables(path, min_bytes=1) == []
    assert lookup_tables(tmp_path / "missing.onnx", min_bytes=1) == []
