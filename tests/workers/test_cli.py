"""`phantom trial` / `phantom sentences check` as a user meets them: one line per mistake."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from phantom.cli import main

GOOD = ["trial", "--model", "tiny-llama", "--sentence", "awe", "--protocol", "lora", "--lr", "0.01", "--steps", "2"]


def run(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_trial_runs_and_reports_where_it_wrote(tmp_path, capsys):
    code, out, _ = run(capsys, [*GOOD, "--out", str(tmp_path), "--quiet"])
    assert code == 0
    assert "ok after 2 steps" in out and str(tmp_path) in out
    [steps] = (tmp_path / "steps").iterdir()
    assert pq.read_table(steps).num_rows == 3


def test_trial_trains_in_the_precision_asked_and_says_so(tmp_path, capsys):
    code, out, _ = run(capsys, [*GOOD, "--out", str(tmp_path), "--quiet", "--precision", "bf16"])
    assert code == 0 and "trained in bf16, observed in fp32)" in out
    [record] = (tmp_path / "trials").iterdir()
    row = pq.read_table(record).to_pylist()[0]
    assert (row["train_precision"], row["obs_precision"]) == ("bf16", "fp32")
    assert '"precision":"bf16"' in row["config"]
    code, _, err = run(capsys, [*GOOD, "--out", str(tmp_path), "--precision", "fp8"])
    assert code == 2 and "--precision: invalid choice: 'fp8'" in err


@pytest.fixture
def bad_sentences(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "sentences:\n"
        "  - {id: hyphen, target: well-being, competitor: longing, contexts: ['she felt a deep and aching']}\n"
        "  - {id: oov, target: zyzzyva, competitor: longing, contexts: ['she felt a deep and aching']}\n"
    )
    return str(path)


BAD = [
    (["--model", "tiny-lama"], "Unknown model 'tiny-lama'. Did you mean 'tiny-llama'?"),
    (["--sentence", "longin"], "Unknown sentence 'longin'. Did you mean 'longing'?"),
    (["--protocol", "loraa"], "Unknown protocol 'loraa'. Did you mean 'lora'?"),
    (["--lr", "0"], "--lr: should be a positive number, got '0'"),
    (["--lr", "-0.001"], "--lr: should be a positive number"),
    (["--lr", "fast"], "--lr: should be a number, got 'fast'"),
    (["--lr", "nan"], "--lr: should be a positive number"),
    (["--steps", "0"], "--steps: should be at least 1, got '0'"),
    (["--steps", "2.5"], "--steps: should be an integer"),
    (["--sentence", "hyphen", "SENTENCES"], "'well-being' is not a single token"),
    (["--sentence", "oov", "SENTENCES"], "'zyzzyva' is not in this tokenizer's vocabulary"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, capsys, bad_sentences, change, message):
    argv = list(GOOD)
    if change[-1] == "SENTENCES":
        change = [*change[:-1], "--sentences", bad_sentences]
    for flag, value in zip(change[::2], change[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, [*argv, "--out", str(out_dir), "--quiet"])
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loading ")]
    assert code == 2
    assert len(lines) == 1, err
    assert message in lines[0]
    assert not out_dir.exists()


def test_offline_hub_model_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run(capsys, [*GOOD, "--model", "EleutherAI/pythia-70m", "--out", str(tmp_path / "o"), "--quiet"])
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loading ")]
    assert code == 2 and len(lines) == 1
    assert "EleutherAI/pythia-70m" in lines[0] and "hub is unreachable" in lines[0]
    assert not (tmp_path / "o").exists()


def test_sentences_check_reports_every_sentence(capsys, bad_sentences):
    code, out, _ = run(capsys, ["sentences", "check", "--model", "tiny-gpt2"])
    assert code == 0
    body = [line for line in out.splitlines()[2:] if line and not line.startswith(("model", "sentence"))]
    assert len(body) == 11  # ten sentences + the summary line
    assert "longing" in out and "0.8470" in out  # planted G_max
    code, out, _ = run(capsys, ["sentences", "check", "--model", "tiny-gpt2", "--sentences", bad_sentences])
    assert "hyphen" in out and "skipped: not a single token: 'well-being'" in out
