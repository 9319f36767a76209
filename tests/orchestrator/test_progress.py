"""The progress line's rate and ETA come from the last few minutes, not the whole run."""

from __future__ import annotations

import io

from orchestrator.progress import ProgressView


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
