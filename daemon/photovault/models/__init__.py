"""Models, split by when they run.

At run time: the store of installed ONNX models and their manifests
(`store`), onnxruntime sessions (`session`, the only module that imports
onnxruntime), preprocessing, the CLIP towers and the CLIP tokenizer, a
model's own tokenizer.json (`hf_tokenizer`) and model families (`families`).
At install time: the exporters in `models.export`, the only modules that
import torch; `install` reaches them only inside functions. Ready-made ONNX
exports from the hub (`hub`) install without torch. Nothing here imports
`photovault.analyze`; the analyzers import this package.
"""
