"""Test helpers shipped with the package (as ``optuna.testing``): importable by tests and by
anyone checking a deployment. Nothing here is used by a normal run."""


def end_process(proc) -> None:
    """Stop a server a test started: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
