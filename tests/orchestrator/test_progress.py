"""The progress line's rate and ETA come from the last few minutes, not the whole run."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io

from phantom.orchestrator import progress
from phantom.orchestrator.progress import ProgressView
from phantom.orchestrator.unit_report import UnitReport


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_and_eta_follow_the_recent_window():
    clock, out = Clock(), io.StringIO()
    view = ProgressView(total=12, budget=100, stream=out, clock=clock, window_s=300.0)
    # an 8-trial pack: 800 member-steps in 100 s (8/s), done
    view.started("pack", 8)
    clock.t += 100
    view.result("pack", {"member_steps": 800, "done": True, "finished": 8})
    assert "8 done" in view.line() and "8.0 steps/s" in view.line()
    # then trials alone, one at a time, 1 step/s: after 600 s more, the window holds only them
    for k in range(4):
        view.started(f"t{k}", 1)
        for s in range(1, 101):
            clock.t += 1
            view.result(f"t{k}", {"member_steps": s})
            view.line()
        view.result(f"t{k}", {"member_steps": 100, "done": True, "finished": 1})
        clock.t += 50
    line = view.line()
    # since the start: 1200 steps / 700 s = 1.7/s. The window (the last 300 s, from t = 1400) is
    # measured from the last sample at or before its start, t = 1350 (1000 steps): the last two
    # trials, 200 steps in 350 s = 0.57/s
    assert "12 done, 0 running, 0 failed, 0 pending" in line
    assert "| 0.6 steps/s |" in line, line


def test_eta_uses_the_recent_rate():
    clock = Clock()
    view = ProgressView(total=10, budget=10, stream=io.StringIO(), clock=clock, window_s=60.0)
    view.started("fast", 5)
    clock.t += 10
    view.result("fast", {"member_steps": 50, "done": True, "finished": 5})  # 50 member-steps in 10 s
    view.line()
    view.started("slow", 1)
    for s in range(1, 11):  # then 1 step every 10 s
        clock.t += 10
        view.result("slow", {"member_steps": s})
        view.line()
    view.result("slow", {"member_steps": 10, "done": True, "finished": 1})
    line = view.line()
    # 4 trials x 10 steps left at the last minute's rate, (60 - 54) steps / (1110 - 1050) s = 0.1/s:
    # 400 s (at the rate since the start, 60 steps / 110 s, it would say 73 s)
    assert "0.1 steps/s" in line and "ETA 6m40s" in line, line


# ----------------------------------------------------------------------------------------------
# the unit's report: one dataclass from the trainable to the view


def test_a_report_crosses_tune_as_a_dict_and_back():
    report = UnitReport(members=5, finished=1, failed=1, skipped=1, running=2, member_steps=12, pack_steps=4,
                        existing=False, done=True)
    sent = report.to_dict()
    assert set(sent) == {f.name for f in dataclasses.fields(UnitReport)}
    # Tune adds keys of its own to the result the driver sees; they are not the unit's
    tune_result = {**sent, "training_iteration": 7, "time_this_iter_s": 0.5, "trial_id": "abc", "pid": 1}
    assert UnitReport.from_dict(tune_result) == report
    assert "members" not in UnitReport().to_dict() and "running" not in UnitReport().to_dict()  # not said


def test_the_view_reads_every_field_of_the_report():
    """A key the unit sends that the driver never reads is dead weight on every round trip
    (the trainable used to send step, phi and node_id)."""
    tree = ast.parse(inspect.getsource(progress))
    read = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "report"}
    assert read == {f.name for f in dataclasses.fields(UnitReport)}


def test_the_view_takes_the_report_or_tunes_dict_alike():
    reports = [UnitReport(members=4, running=4, member_steps=8, pack_steps=8),
               UnitReport(members=4, finished=3, failed=1, running=0, member_steps=12, done=True)]
    lines = []
    for kind in (lambda r: r, UnitReport.to_dict):
        view = ProgressView(total=6, budget=3, stream=io.StringIO(), clock=Clock())
        view.started("u", 4)
        for r in reports:
            view.result("u", kind(r))
        lines.append(view.line())
    assert lines[0] == lines[1] and "3 done, 0 running, 1 failed, 2 pending" in lines[0]
