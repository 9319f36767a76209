"""The protocol vocabulary (phantom.protocols): its words are the strings every config, trial id,
Parquet column and SQL view already uses, and its properties say what the worker really trains."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from phantom.config import LoraConfig, TrialConfig, to_dict
from phantom.errors import ConfigError
from phantom.protocols import HEAD_ABLATION, PROTOCOLS, Protocol

# protocol, adapter, LoRA, embedding frozen, head trained (tied), head trained (untied): science §6.2
# and the paper ("standard LoRA freezes the input embedding but not the LM head")
CASES = [
    ("full", False, False, False, True, True),
    ("lora", True, True, True, False, True),
    ("lora-frozen-head", True, True, True, False, False),
    ("prefix", True, False, True, False, False),
]


@pytest.mark.parametrize("name,adapter,lora,frozen,head_tied,head_untied", CASES)
def test_each_protocol_says_what_it_trains(name, adapter, lora, frozen, head_tied, head_untied):
    p = Protocol(name)
    assert (p.adapter, p.is_lora, p.embedding_frozen) == (adapter, lora, frozen)
    assert (p.head_trained(tied=True), p.head_trained(tied=False)) == (head_tied, head_untied)


def test_the_words_are_the_strings_configs_and_records_use():
    assert PROTOCOLS == ("full", "lora", "lora-frozen-head", "prefix") == tuple(c[0] for c in CASES)
    assert [str(p) for p in Protocol] == list(PROTOCOLS) and [f"{p}" for p in Protocol] == list(PROTOCOLS)
    assert Protocol.LORA == "lora" and {"lora": 1}[Protocol.LORA] == 1  # equal and hashed as the string
    assert HEAD_ABLATION == (Protocol.LORA, Protocol.LORA_FROZEN_HEAD)


def test_a_config_holds_a_protocol_and_serialises_its_name():
    """The trial id hashes the canonical JSON: the protocol must go in as the same string as
    before it was a type (the id below was computed by the code that held it as a str)."""
    cfg = TrialConfig(model="m", sentence_id="s", target="a", competitor="b", contexts=("x",), protocol="lora")
    assert cfg.protocol is Protocol.LORA
    assert cfg.trial_id == "4d884bbee94f444d" and cfg.bracket_id == "51dcc2f2f0dfb93d"
    data = to_dict(cfg)
    assert type(data["protocol"]) is str and data["protocol"] == "lora"
    assert yaml.safe_load(yaml.safe_dump(data)) == json.loads(cfg.canonical_json()) == data
    assert TrialConfig.from_dict(data) == cfg and TrialConfig.from_dict(data).trial_id == cfg.trial_id
    assert cfg.replace(protocol="full").protocol is Protocol.FULL


@pytest.mark.parametrize("value,message", [
    ("loraa", "Unknown protocol 'loraa'. Did you mean 'lora'? Available: full, lora, lora-frozen-head, prefix"),
    ("LoRA", "Unknown protocol 'LoRA'"),
])
def test_an_unknown_protocol_is_refused_with_a_suggestion(value, message):
    with pytest.raises(ConfigError, match="^" + message.replace("?", r"\?").replace(".", r"\.")):
        TrialConfig(model="m", sentence_id="s", target="a", competitor="b", contexts=("x",), protocol=value)
    with pytest.raises(ConfigError, match="should be a string"):
        TrialConfig.from_dict({"model": "m", "sentence_id": "s", "target": "a", "competitor": "b",
                               "contexts": ["x"], "protocol": 3})


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-neox"])  # tied, untied
@pytest.mark.parametrize("protocol", list(Protocol), ids=str)
def test_the_properties_are_what_the_worker_trains(tiny_models, model, protocol):
    """Checked on the parameters ``phantom.workers.protocols.apply_protocol`` leaves trainable."""
    from phantom.workers.protocols import apply_protocol

    base = tiny_models[model]
    trained = apply_protocol(copy.deepcopy(base.model), protocol, LoraConfig(), base.tied)
    names = [n for n, p in trained.named_parameters() if p.requires_grad]
    assert trained.get_input_embeddings().weight.requires_grad is not protocol.embedding_frozen
    assert trained.get_output_embeddings().weight.requires_grad is protocol.head_trained(base.tied)
    assert any("lora_A" in n for n in names) is protocol.is_lora
    added = [n for n in names if "lora_" in n or "prompt_encoder" in n]
    assert bool(added) is protocol.adapter


NAME = r"""["'](?:full|lora|lora-frozen-head|prefix)["']"""
COMPARED = re.compile(rf"""(?:==|!=|<>|\bin\s*\(|\bis|\bprotocol\s*=)\s*{NAME}|{NAME}\s*(?:==|!=|<>|,\s*{NAME}\))"""
                      r"|PROTOCOLS\[")  # or read by list position


def test_no_protocol_name_is_compared_outside_its_vocabulary():
    """Code asks a Protocol what it trains (packs.py, protocols.py, claims.py and tables.py
    tested names or list positions). Test helpers that make synthetic data are left out."""
    root = Path(__file__).resolve().parents[2]
    hits = [f"{path.relative_to(root)}: {m.group(0)}"
            for pkg in ("phantom", "models", "workers", "orchestrator", "analysis") if (root / pkg).is_dir()
            for path in sorted((root / pkg).rglob("*.py"))
            if path.name != "protocols.py" or pkg != "phantom"
            if "testing" not in path.relative_to(root).parts and path.stem != "testing"
            for m in COMPARED.finditer(path.read_text())]
    assert hits == []
