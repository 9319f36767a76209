"""docker/slurm/phantom.sbatch: checked statically, run against stand-ins for srun/scontrol/ray/
phantom (what it starts where, with which arguments), and, opted in with PHANTOM_TEST_SLURM=1
(as root, with Debian's slurm-wlm and munge), submitted to a real two-node Slurm on this host
(two slurmd) and requeued mid-sweep."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phantom.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "docker" / "slurm" / "phantom.sbatch"


def _text() -> str:
    return SBATCH.read_text()


def test_sbatch_script_parses_and_has_its_pieces():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    text = _text()
    directives = re.findall(r"^#SBATCH (\S+)", text, re.M)
    for needed in ("--requeue", "--open-mode=append", "--ntasks-per-node=1", "--exclusive"):
        assert needed in directives, needed
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in text
    # a head on the first node, a worker on each of the others, each its own srun step
    assert re.search(r'srun [^\n]*-w "\$head_node" \\\n\s+ray start --head ', text)
    assert re.search(r'for node in "\$\{nodes\[@\]:1\}"; do\n\s+srun [^\n]*-w "\$node" \\\n\s+ray start --address="\$address"', text)
    assert text.count(" --block &") == 2  # both stay up until the job ends
    # the sweep runs against that cluster and the given storage, with the rest of the arguments
    [line] = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("phantom sweep run")]
    assert line == 'phantom sweep run "$sweep" --address "$address" --storage "$storage" "$@"'
    argv = shlex.split(line.replace('"$sweep"', "sweeps/lr50.yaml").replace('"$address"', "10.0.0.1:20001")
                       .replace('"$storage"', "/shared/phantom").replace('"$@"', "--set training.steps=3"))
    args = build_parser().parse_args(argv[1:])  # the real CLI takes it
    assert args.run.__name__ == "run_command" and args.storage == "/shared/phantom"
    assert args.address == "10.0.0.1:20001" and args.overrides == ["training.steps=3"]


STUB = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >> "$CALLS"
"""


@pytest.fixture
def stand_ins(tmp_path):
    """srun (runs the command, as on one node), scontrol, ray, phantom and python3 stand-ins
    that write their arguments to CALLS."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    real_python = shutil.which("python3") or sys.executable
    scripts = {
        "scontrol": STUB + 'printf "n1\\nn2\\nn3\\n"\n',
        "srun": STUB + 'while [ "${1#-}" != "$1" ]; do case "$1" in -w|--nodes|--ntasks) shift;; esac; shift; done\n'
                       'case "$1" in hostname) echo "10.1.2.3 fe80::1";; *) exec "$@";; esac\n',
        "ray": STUB + 'case " $* " in *" --block "*) exec sleep 30;; esac\n',
        "phantom": STUB + "exit 0\n",
        # `python3 -` is the script's cluster check: answered "up" once both workers have started,
        # as a real cluster is only up when its nodes joined (the worker sruns run in the
        # background, so on a loaded machine they may start after the check begins);
        # `python3 -c` is real
        "python3": STUB + 'if [ "$1" = "-" ]; then cat >/dev/null; for _ in $(seq 100); do\n'
                          '  [ "$(grep -c -- "^ray .*--address=" "$CALLS")" -ge $(($3 - 1)) ] && exit 0; sleep 0.1;\n'
                          'done; exit 0; fi\n'
                          f'exec {real_python} "$@"\n',
    }
    for name, body in scripts.items():
        (bin_ / name).write_text(body)
        (bin_ / name).chmod(0o755)
    env = {
        "PATH": f"{bin_}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"), "HOME": str(tmp_path),
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "n[1-3]", "SLURM_CPUS_PER_TASK": "8",
        "SLURM_SUBMIT_DIR": str(tmp_path), "PHANTOM_RAY_WAIT": "10",
    }
    return env, tmp_path / "calls"


def test_sbatch_starts_head_then_workers_then_the_sweep(stand_ins):
    env, calls = stand_ins
    proc = subprocess.run(["bash", str(SBATCH), "sweeps/x.yaml", "/shared/st", "--set", "training.steps=3"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    ray = [ln for ln in lines if ln.startswith("ray ")]
    head = [ln for ln in ray if "--head" in ln]
    assert len(head) == 1
    assert "--node-ip-address=10.1.2.3 --port=24242 --num-cpus=8 --temp-dir=/tmp/ray-4242/n1" in head[0]
    workers = [ln for ln in ray if "--address=10.1.2.3:24242" in ln]
    assert len(workers) == 2  # n2 and n3
    assert {w.split("--temp-dir=")[1].split()[0] for w in workers} == {"/tmp/ray-4242/n2", "/tmp/ray-4242/n3"}
    assert [ln for ln in lines if ln.startswith("srun")][1].endswith("-w n1 ray start --head " + head[0].split("--head ", 1)[1])
    assert {ln.split(" -w ")[1].split()[0] for ln in lines if ln.startswith("srun") and "--address=" in ln} == {"n2", "n3"}
    sweep = [ln for ln in lines if ln.startswith("phantom ")]
    assert sweep == ["phantom sweep run sweeps/x.yaml --address 10.1.2.3:24242 --storage /shared/st --set training.steps=3"]
    assert lines.index(head[0]) < lines.index(sweep[0]) and all(lines.index(w) < lines.index(sweep[0]) for w in workers)
    assert "phantom: job 4242 (restart 0) nodes n1 n2 n3; Ray head 10.1.2.3:24242" in proc.stderr


def test_sbatch_passes_the_sweep_exit_code_and_needs_its_arguments(stand_ins):
    env, calls = stand_ins
    phantom = Path(env["PATH"].split(":")[0]) / "phantom"
    phantom.write_text(STUB + "exit 3\n")
    proc = subprocess.run(["bash", str(SBATCH), "s.yaml", "/st"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "phantom: sweep run exited 3" in proc.stderr
    proc = subprocess.run(["bash", str(SBATCH), "s.yaml"], env=env, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "usage: sbatch" in proc.stderr


# ----------------------------------------------------------------------------------------------
# a real one-node Slurm (opt-in)

SLURM_CONF = """\
ClusterName=phantomtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool-%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldPort=16817
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MpiDefault=none
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd-%n.log
NodeName=n1 NodeHostname={host} NodeAddr=127.0.0.1 Port=16821 CPUs=1 RealMemory=4000 State=UNKNOWN
NodeName=n2 NodeHostname={host} NodeAddr=127.0.0.1 Port=16822 CPUs=1 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
"""
NODES = ("n1", "n2")  # two slurmd on this host (Slurm's multiple-slurmd mode): a head and a worker


def _wait(predicate, timeout: float, what: str, step: float = 2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def slurm(tmp_path):
    if os.environ.get("PHANTOM_TEST_SLURM") != "1":
        pytest.skip("opt in with PHANTOM_TEST_SLURM=1 (starts munged, slurmctld and slurmd as root)")
    if os.geteuid() != 0 or not all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        pytest.skip("needs root and Debian's slurm-wlm + munge (apt-get install slurm-wlm munge)")
    d = tmp_path / "slurm"
    (d / "state").mkdir(parents=True)
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    conf = d / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=host, d=d))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True)
    subprocess.run(["slurmctld", "-c"], env=env, check=True)
    for node in NODES:
        subprocess.run(["slurmd", "-N", node], env=env, check=True)
    try:
        _wait(lambda: subprocess.run(["sinfo", "-h", "-o", "%T %D"], env=env, capture_output=True,
                                     text=True).stdout.split() == ["idle", "2"], 60, "the nodes to come up")
        yield env, d
    finally:
        for pidfile in ("slurmd-n1.pid", "slurmd-n2.pid", "slurmctld.pid"):
            try:
                os.kill(int((d / pidfile).read_text()), 15)
            except (OSError, ValueError):
                pass


@pytest.mark.slurm
@pytest.mark.timeout(900)
def test_real_slurm_requeue_resumes_without_duplicates(slurm, tmp_path):
    import pyarrow.parquet as pq

    env, d = slurm
    storage = tmp_path / "storage"
    folder = storage / "lr50"
    job_env = {**env, "PHANTOM_VENV": str(Path(sys.executable).parents[1])}
    out = subprocess.run(
        ["sbatch", "--parsable", "--nodes=2", "--cpus-per-task=1", f"--output={d}/job-%j.log",
         str(SBATCH), "sweeps/lr50.yaml", str(storage), "--set", "models=[tiny-llama]",
         "--set", "training.steps=3", "--set", "sentences.ids=[longing,shame]", "--set", "testing.step_delay_s=1"],
        env=job_env, cwd=REPO, capture_output=True, text=True, check=True,
    )
    job = out.stdout.strip().split(";")[0]
    log = d / f"job-{job}.log"

    def squeue() -> str:
        return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True, text=True).stdout.strip()

    def done() -> int:
        return len(list((folder / "trials").glob("*.parquet"))) if (folder / "trials").is_dir() else 0

    _wait(lambda: done() >= 2, 400, "two complete trials")
    before = {p.name for p in (folder / "trials").glob("*.parquet")}
    subprocess.run(["scontrol", "requeue", job], env=env, check=True)
    _wait(lambda: squeue() == "PENDING", 120, "the requeued job to be pending")
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)  # skip the delay
    _wait(lambda: squeue() == "", 500, "the requeued job to finish", step=5)
    text = log.read_text()
    assert "(restart 1) nodes n1 n2" in text and "phantom: sweep run exited 0" in text, text[-3000:]
    assert "going on with the nodes that joined" not in text  # the worker joined both times
    resumed = re.search(r"\(restart 1\).*?10 trials, (\d+) complete, (\d+) to run", text, re.S)
    assert resumed and int(resumed.group(1)) >= len(before) and int(resumed.group(2)) > 0
    records = [pq.read_table(p).to_pylist()[0] for p in (folder / "trials").glob("*.parquet")]
    assert len(records) == 10 and all(r["status"] == "ok" for r in records)
    steps = pq.read_table(folder / "steps").select(["trial_id", "step", "context_id"]).to_pylist()
    keys = [(r["trial_id"], r["step"], r["context_id"]) for r in steps]
    assert len(keys) == len(set(keys)) == 10 * 4
    attempts = [json.loads(p.read_text())["attempts"] for p in (folder / "attempts").glob("*.json")]
    assert len({a["node_id"] for trial in attempts for a in trial}) >= 3  # 2 Ray nodes, then new ones
    for name in before:  # complete before the requeue: never run again
        attempts = json.loads((folder / "attempts" / name.replace(".parquet", ".json")).read_text())["attempts"]
        assert len(attempts) == 1
