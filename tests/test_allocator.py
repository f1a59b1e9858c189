"""The C allocator tuning the command line applies."""

import platform
import sys

import pytest
import torch

from mesh_style.allocator import reuse_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_thresholds_and_large_tensors_still_work():
    assert reuse_freed_memory()
    for _ in range(3):  # freed and reallocated from the heap now, not fresh mmaps
        big = torch.ones(64, 1024, 1024)
        assert big.sum().item() == 64 * 1024 * 1024
        del big
