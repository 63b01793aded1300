import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_threads():
    # CI has 2 cores; keep torch from oversubscribing them when Ray workers run beside tests.
    torch.set_num_threads(2)
    yield
