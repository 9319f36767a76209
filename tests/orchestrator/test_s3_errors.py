"""Object storage that cannot be used is one line each — wrong credentials, a missing bucket,
an endpoint that does not answer — for run, resume, status and validate: exit 2, no
traceback, nothing written (against the S3 server the tests start, no Ray)."""

from __future__ import annotations

import json

import pytest
import yaml

from phantom.orchestrator.testing import tiny_sweep
from phantom.cli import main
from phantom.testing.s3 import free_port

pytestmark = pytest.mark.timeout(240)


def _folder(s3_server, write_sweep) -> str:
    """A sweep folder on the bucket as `run` leaves it before dispatch (sweep.yaml, plan)."""
    s3 = s3_server.client()
    data = tiny_sweep()
    s3.put_object(Bucket=s3_server.bucket, Key="sweeps/tiny/sweep.yaml", Body=yaml.safe_dump(data).encode())
    s3.put_object(Bucket=s3_server.bucket, Key="sweeps/tiny/sentences.yaml",
                  Body=open(data["sentences"]["file"], "rb").read())
    s3.put_object(Bucket=s3_server.bucket, Key="sweeps/tiny/plan.json",
                  Body=json.dumps({"name": "tiny", "trials": ["0123456789abcdef"]}).encode())
    return s3_server.uri("sweeps/tiny")


def _commands(path, folder, storage):
    return {
        "validate": ["sweep", "validate", str(path), "--storage", storage],
        "run": ["sweep", "run", str(path), "--storage", storage],
        "resume": ["sweep", "resume", folder],
        "status": ["sweep", "status", folder],
    }


def _one_line(capsys, code, expected: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2, (code, captured.out, captured.err)
    assert len(err) == 1 and err[0].startswith("phantom: error: storage refused: "), captured.err
    assert expected in err[0], err[0]
    assert "Traceback" not in captured.out + captured.err
    return err[0]


@pytest.mark.parametrize("case", ["wrong secret", "unknown key", "missing bucket", "unreachable endpoint"])
def test_unusable_object_storage_is_one_line_for_every_command(s3_server, write_sweep, monkeypatch, capsys, case):
    import ray

    path = write_sweep(tiny_sweep())
    folder = _folder(s3_server, write_sweep)
    before = sorted(s3_server.keys())
    storage, where = s3_server.uri("sweeps"), f"s3://{s3_server.bucket}"
    if case == "wrong secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        expected = "the credentials were refused"
    elif case == "unknown key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
        expected = "the credentials were refused"
    elif case == "missing bucket":
        storage, folder, where = "s3://no-such-bucket-here/sweeps", "s3://no-such-bucket-here/sweeps/tiny", \
            "s3://no-such-bucket-here"
        expected = "no such bucket"
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        expected = "the endpoint cannot be reached"
    for name, argv in _commands(path, folder, storage).items():
        line = _one_line(capsys, main(argv), expected)
        assert line.endswith(where) or f"{where}/" in line, (name, line)
    assert sorted(s3_server.keys()) == before  # nothing written, not even a lock
    assert not ray.is_initialized()  # refused before Ray


def test_the_same_commands_work_with_the_right_settings(s3_server, write_sweep, capsys):
    """The control for the test above: same server, same folder, the fixture's settings."""
    path = write_sweep(tiny_sweep())
    folder = _folder(s3_server, write_sweep)
    assert main(["sweep", "validate", str(path), "--storage", s3_server.uri("sweeps")]) == 0
    assert f"data: {s3_server.uri('sweeps')}/tiny" in capsys.readouterr().out
    assert main(["sweep", "status", folder]) == 3  # incomplete: 1 planned, none done
    assert "1 trials planned" in capsys.readouterr().out
