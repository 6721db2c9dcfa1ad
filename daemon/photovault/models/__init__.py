"""Models: the store of installed ONNX models, their export and the CLIP tokenizer.

Export modules (`export_tagger`, `export_clip`) import torch and run only at
install time; nothing the daemon imports at run time needs torch.
"""
