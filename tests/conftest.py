import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_threads():
    # CI has 2 cores; keep torch from oversubscribing them when Ray workers run beside tests.
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="module")
def ray_session():
    """An embedded local Ray sized for a 2-core CI machine, shared by a test module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 ** 2,
             log_to_driver=False, configure_logging=True, logging_level="ERROR")
    yield
    ray.shutdown()
