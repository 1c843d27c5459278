"""Shared test settings: one thread (2-core CI shares them), deterministic seeds; torchvision
importable on the CPU torch before any test module imports transformers or timm."""

import pytest
import torch

from archlearn.compat import torchvision_importable

# the dev extra's torchvision is a CUDA build: without this, importing it (and so transformers
# and timm) fails next to the CPU torch; see archlearn.compat
torchvision_importable()


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
