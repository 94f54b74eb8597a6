# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's top-level ``lmcache`` package.

LMCache's package picks the accelerator namespace (``torch.cuda`` and
friends) once at import time and exposes it as ``torch_dev`` /
``torch_device_type``.  This harness runs on CPU, so only the CUDA branch
is reproduced: ``torch_device_type`` is ``"cuda"`` when CUDA is usable and
``"cpu"`` otherwise.
"""

# Third Party
import torch

torch_dev = torch.cuda
torch_device_type = "cuda" if torch.cuda.is_available() else "cpu"
