"""Install-time exporters: torch (and open_clip) models -> ONNX folders.

The only modules in the package that import torch, each only inside
functions; `models/install.py` imports them lazily, so neither vaultd nor the
rest of vaultctl ever loads them.
"""
