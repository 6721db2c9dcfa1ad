from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from photovault.models import session as session_mod
from photovault.models.session import ManagedModel, ModelLoadError, SessionFactory


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pixels() -> dict[str, np.ndarray]:
    return {"pixels": np.ones((2, 3, 8, 8), dtype=np.float32)}


def test_asking_for_cuda_without_it_runs_on_cpu_and_reports_cpu_provider(
    classifier_path: Path,
) -> None:
    factory = SessionFactory(["CUDAExecutionProvider", "CPUExecutionProvider"], 1, 1, 60.0)
    model = factory.managed(classifier_path)
    (logits,) = model.run(_pixels())
    assert logits.shape == (2, 10)
    assert model.provider == "CPUExecutionProvider"
    assert factory.providers == ["CPUExecutionProvider"]


def test_missing_cuda_is_logged_once_per_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(session_mod, "_warned_unavailable", set())
    with caplog.at_level(logging.WARNING, logger=session_mod.__name__):
        SessionFactory(["CUDAExecutionProvider", "CPUExecutionProvider"], 1, 1, 60.0)
        SessionFactory(["CUDAExecutionProvider", "CPUExecutionProvider"], 1, 1, 60.0)
    warnings = [r for r in caplog.records if "CUDAExecutionProvider" in r.getMessage()]
    assert len(warnings) == 1


def test_cpu_provider_is_always_kept_as_the_last_resort() -> None:
    factory = SessionFactory(["CUDAExecutionProvider"], 1, 1, 60.0)
    assert factory.providers == ["CPUExecutionProvider"]


def test_session_options_turn_off_arena_and_spinning() -> None:
    options = SessionFactory(["CPUExecutionProvider"], 2, 1, 60.0).session_options()
    assert options.enable_cpu_mem_arena is False
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_managed_model_loads_only_on_first_use(classifier_path: Path) -> None:
    model = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0).managed(classifier_path)
    assert not model.loaded
    model.run(_pixels())
    assert model.loaded


def test_reap_unloads_a_model_idle_past_its_ttl(classifier_path: Path) -> None:
    clock = FakeClock()
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, clock=clock)
    model = factory.managed(classifier_path)
    model.run(_pixels())
    clock.now += 61
    assert factory.reap() == 1
    assert not model.loaded
    assert model.provider is None


def test_reap_keeps_a_recently_used_model(classifier_path: Path) -> None:
    clock = FakeClock()
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, clock=clock)
    model = factory.managed(classifier_path)
    model.run(_pixels())
    clock.now += 30
    assert factory.reap() == 0
    assert model.loaded


def test_a_reaped_model_reloads_on_the_next_run_with_the_same_results(
    classifier_path: Path,
) -> None:
    clock = FakeClock()
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, clock=clock)
    model = factory.managed(classifier_path)
    (first,) = model.run(_pixels())
    clock.now += 120
    model.reap()
    (second,) = model.run(_pixels())
    assert model.load_count == 2
    np.testing.assert_array_equal(first, second)


def test_loaded_models_lists_only_models_in_memory(classifier_path: Path) -> None:
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0)
    used = factory.managed(classifier_path, name="used")
    factory.managed(classifier_path, name="idle")
    used.run(_pixels())
    assert factory.loaded_models() == ["used"]


def test_a_missing_model_file_raises_an_error_naming_the_file(tmp_path: Path) -> None:
    model = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0).managed(tmp_path / "gone.onnx")
    with pytest.raises(ModelLoadError, match=r"gone\.onnx.*file not found"):
        model.run(_pixels())


def test_a_corrupt_model_is_retried_once_then_fails_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    model = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0).managed(bad)
    with caplog.at_level(logging.WARNING), pytest.raises(ModelLoadError, match=r"bad\.onnx"):
        model.session()
    assert any("retrying once" in r.getMessage() for r in caplog.records)


def test_a_load_that_fails_once_succeeds_on_the_retry(
    classifier_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0)
    real_create = factory.create
    calls = {"n": 0}

    def flaky(path: Path, spinning: bool = False) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient")
        return real_create(path, spinning)

    monkeypatch.setattr(factory, "create", flaky)
    model: ManagedModel = factory.managed(classifier_path)
    model.run(_pixels())
    assert calls["n"] == 2
    assert model.loaded


def test_inspect_model_reports_symbolic_batch_as_none(classifier_path: Path) -> None:
    signature = session_mod.inspect_model(classifier_path)
    assert signature.inputs[0].name == "pixels"
    assert signature.inputs[0].shape == (None, 3, 8, 8)
    assert signature.outputs[0].shape == (None, 10)


def test_int8_quantization_keeps_the_outputs_close_to_fp32(
    tiny_models: object, tmp_path: Path
) -> None:
    fp32 = tiny_models.build_classifier(tmp_path / "fp32.onnx", num_classes=64, side=8)
    int8 = tmp_path / "int8.onnx"
    session_mod.quantize_dynamic_int8(fp32, int8, op_types=["MatMul"])
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0)
    x = {"pixels": np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)}
    (want,) = factory.create(fp32).run(None, x)
    (got,) = factory.create(int8).run(None, x)
    cosine = (want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.99
