"""Search and prediction start fast: spaces, architectures, layers and counts never import torch."""

from __future__ import annotations

import subprocess
import sys


def test_space_api_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from nasprof.space import get_space, get_preset, Arch\n"
        "space = get_space('mnasnet')\n"
        "arch = space.mutate(space.sample(1, seed=0)[0], 1)\n"
        "assert Arch.from_string(arch.to_string()) == arch\n"
        "keys = [layer.key for layer in arch.layers()]\n"
        "assert len(space.distinct_layers(224)) == 2149 and get_preset('resnet50').params > 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
