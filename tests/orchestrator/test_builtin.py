"""The study's sweep files ship in the package (issue 26): listed, run by name, copied to edit."""

from __future__ import annotations

import pytest

from phantom import sweeps
from phantom.cli import main
from phantom.errors import ConfigError
from phantom.orchestrator.expand import expand
from phantom.orchestrator.loader import init_sweep, load_sweep, locate_sweep

REPO_SWEEPS = sorted(p.stem for p in sweeps.folder().glob("*.yaml") if p.name != sweeps.SENTENCES)


def test_every_sweep_file_of_the_folder_is_a_built_in_sweep(capsys):
    assert REPO_SWEEPS and sweeps.names() == REPO_SWEEPS
    assert {"lr50", "study", "paper-grid", "cross-arch"} <= set(REPO_SWEEPS)
    assert main(["sweeps"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(listed) == REPO_SWEEPS
    assert "10 sentences x 5 learning rates" in listed["lr50"]  # its `description:`


def test_a_sweep_is_a_path_or_a_built_in_name(tmp_path, monkeypatch):
    assert locate_sweep("lr50") == sweeps.folder() / "lr50.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lr50").write_text("name: mine\n")  # a path that exists wins
    assert locate_sweep("lr50").resolve() == tmp_path / "lr50"
    with pytest.raises(ConfigError, match=r"^sweep file not found: lr50\.yaml\. Did you mean 'lr50'\? Built-in sweeps: "):
        locate_sweep("lr50.yaml")
    with pytest.raises(ConfigError, match=r"^sweep file not found: studdy\. Did you mean 'study'\?"):
        locate_sweep("studdy")


@pytest.mark.parametrize("name", REPO_SWEEPS)
def test_init_copies_a_sweep_with_the_files_it_reads_and_the_copy_is_the_same_sweep(tmp_path, name):
    written = init_sweep(name, tmp_path)
    assert written[0] == tmp_path / f"{name}.yaml" and (tmp_path / sweeps.SENTENCES) in written
    shipped, shipped_sentences = load_sweep(name)
    copy, copy_sentences = load_sweep(written[0])
    assert copy == shipped and copy_sentences == tmp_path / sweeps.SENTENCES
    if shipped.search.mode == "grid" and set(shipped.models) <= {"smollm2-135m"}:  # installed here
        assert expand(copy, copy_sentences).ids == expand(shipped, shipped_sentences).ids


def test_init_refuses_to_overwrite_and_then_writes_nothing(tmp_path, capsys):
    (tmp_path / "sentences.yaml").write_text("mine\n")
    assert main(["sweep", "init", "lr50", "--dir", str(tmp_path)]) == 2
    assert "sentences.yaml exists already: edit, or pass --force to overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentences.yaml"]
    assert (tmp_path / "sentences.yaml").read_text() == "mine\n"
    assert main(["sweep", "init", "lr50", "--dir", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "sentences.yaml").read_text() == sweeps.sentences_file().read_text()
    assert main(["sweep", "init", "lr-fifty", "--dir", str(tmp_path)]) == 2
    assert "Unknown built-in sweep 'lr-fifty'" in capsys.readouterr().err


def test_the_default_sentences_are_the_shipped_ones():
    from phantom.workers.sentences import DEFAULT_SENTENCES, load_sentences

    assert DEFAULT_SENTENCES == sweeps.sentences_file() and DEFAULT_SENTENCES.is_file()
    assert "longing" in load_sentences()
