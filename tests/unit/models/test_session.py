from __future__ import annotations

import logging
import platform
import sys
import weakref
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from photovault import memory as memory_mod
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


# -- memory at rest (issue #20, item 5) ------------------------------------------------


class Releases:
    """Counts the factory's `release()` calls (malloc_trim in production)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_an_unloaded_model_leaves_no_session_alive_and_hands_the_memory_back(
    classifier_path: Path,
) -> None:
    release = Releases()
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, release=release)
    model = factory.managed(classifier_path)
    model.run(_pixels())
    session = weakref.ref(model.session())
    after_load = release.calls
    model.unload()
    assert session() is None  # freed at once: nothing else holds it, no cycle
    assert release.calls == after_load + 1


def test_reap_hands_the_memory_back_once_per_pass_and_only_after_an_unload(
    classifier_path: Path,
) -> None:
    clock = FakeClock()
    release = Releases()
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, clock=clock, release=release)
    models = [factory.managed(classifier_path, name=n) for n in ("a", "b")]
    sessions = [weakref.ref(m.session()) for m in models]
    before = release.calls
    assert factory.reap() == 0
    assert release.calls == before
    clock.now += 61
    assert factory.reap() == 2
    assert release.calls == before + 1
    assert [s() for s in sessions] == [None, None]


def test_release_memory_trims_the_heap_where_the_c_library_can(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pads: list[int] = []
    monkeypatch.setattr(memory_mod, "_trim", lambda pad: pads.append(pad) or 1)
    assert memory_mod.release_memory() is True
    assert pads == [0]
    monkeypatch.setattr(memory_mod, "_trim", None)
    assert memory_mod.release_memory() is False


def test_glibc_malloc_trim_is_found_on_linux() -> None:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    assert memory_mod._trim is not None
    assert memory_mod.release_memory() is True


def test_a_lookup_table_is_mapped_from_the_file_and_gives_the_same_outputs(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    path = tiny_models.build_text_encoder(tmp_path / "text.onnx", dim=8, context=None)
    ids = {"input_ids": np.array([[49406, 320, 2368, 49407]], dtype=np.int64)}
    loaded = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, map_tables=None)
    mapped = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, map_tables=1024)
    model = mapped.managed(path)
    (want,) = loaded.managed(path).run(ids)
    (got,) = model.run(ids)
    np.testing.assert_array_equal(got, want)
    pins = model.session().photovault_mapped
    assert [type(array).__name__ for array, _ in pins] == ["memmap"]
    table = weakref.ref(pins[0][0])
    del pins
    model.unload()
    assert table() is None  # the map goes with the session
    (again,) = model.run(ids)
    np.testing.assert_array_equal(again, want)


def test_small_tables_and_non_cpu_factories_load_as_usual(
    tiny_models: ModuleType, tmp_path: Path
) -> None:
    path = tiny_models.build_text_encoder(tmp_path / "text.onnx", dim=8)
    model = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0).managed(path)
    assert not hasattr(model.session(), "photovault_mapped")  # 1.6 MB < 16 MiB


def test_a_model_with_a_loader_is_loaded_reaped_and_reloaded_like_a_session(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    release = Releases()
    factory = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0, clock=clock, release=release)
    loads: list[Path] = []

    class Net:
        pass

    def load(path: Path) -> Net:
        loads.append(path)
        return Net()

    model = factory.managed(tmp_path / "net.dat", name="net", loader=load)
    (tmp_path / "net.dat").write_bytes(b"weights")
    net = weakref.ref(model.session())
    assert model.provider == "CPUExecutionProvider"
    assert factory.loaded_models() == ["net"]
    clock.now += 61
    assert factory.reap() == 1
    assert net() is None
    model.session()
    assert loads == [tmp_path / "net.dat"] * 2
