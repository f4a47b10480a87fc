"""kdsharp demo: a bad request leaves nothing behind."""
from __future__ import annotations

import pytest

from kdsharp.errors import KdsharpError
from kdsharp.infer.demo import run_demo


def test_a_bad_model_or_device_creates_no_demo_folder(tmp_path):
    with pytest.raises(KdsharpError, match="no_such_model"):
        run_demo(tmp_path / "demo", model="no_such_model")
    with pytest.raises(KdsharpError, match="cuda:99"):
        run_demo(tmp_path / "demo", device="cuda:99")
    assert list(tmp_path.iterdir()) == []
