"""The Ray session phantom starts by itself."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.timeout(120)


def test_a_ray_started_here_leaves_no_session_folder_after_a_clean_run():
    """A local Ray that phantom starts writes /tmp/ray/session_*; it goes after a clean run (it
    stays after a failed one, for Ray's own logs)."""
    import ray

    from orchestrator.engine import RaySession, _session_dir

    if ray.is_initialized():
        ray.shutdown()
    with RaySession(None, {"CPU": 1.0}) as session:
        folder = _session_dir()
        assert session.started and folder and os.path.isdir(folder)
    assert not os.path.exists(folder)

    with pytest.raises(RuntimeError):
        with RaySession(None, {"CPU": 1.0}):
            kept = _session_dir()
            raise RuntimeError("a failed run")
    assert os.path.isdir(kept)
    shutil.rmtree(kept, ignore_errors=True)
