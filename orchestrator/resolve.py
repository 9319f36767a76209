"""A sweep's models on the driver: each name resolved once, its tokenizer read, no torch.

The driver checks every model before anything is written or started: :func:`phantom.models.resolve`
refuses a name that cannot be a model, and a hub id this machine cannot reach (not in the
Hugging Face cache, the hub down) is refused here in one line. The single-token check of the
sentences needs only a tokenizer, read from a file where there is one
(:func:`phantom.models.read_tokenizer`); only a model that has no such file yet (an embedded model
never converted, a hub model with a slow tokenizer) loads through transformers.
"""

from __future__ import annotations


from phantom import models
from phantom.models import ModelSource
from phantom.errors import ModelError, suggest


def check_name(name: str) -> str:
    """The kind of ``name`` ('tiny', 'embedded', 'local' or 'hub'); a one-line error when it
    cannot be a model at all (:func:`phantom.models.resolve`)."""
    return models.resolve(name).kind


def check_models(names: tuple[str, ...]) -> dict[str, ModelSource]:
    """{name: source} for models that can be resolved here; a one-line error for the first that
    cannot (:func:`phantom.models.resolve`, or a hub id neither in the Hugging Face cache nor reachable)."""
    sources = {name: models.resolve(name) for name in names}
    offline = [s.name for s in sources.values() if s.kind == "hub" and not s.cached]
    if offline and not models.hub_reachable():
        name = offline[0]
        raise ModelError(
            f"Unknown model '{name}' in `models`: not registered, not a local directory, not in the "
            f"Hugging Face cache, and the hub is unreachable.{suggest(name, models.registered())} "
            f"Registered: {', '.join(models.registered())}"
        )
    return sources


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    """A tokenizer for the single-token check: from a file where there is one (fast, no
    torch; a tiny model's from the default sentences it is built from), else through
    transformers (an embedded model never converted loads in full, once)."""
    from phantom.workers.sentences import load_sentences

    tokenizer = models.read_tokenizer(source, load_sentences() if source.kind == "tiny" else None)
    if tokenizer is not None:
        return tokenizer
    if source.kind == "embedded":
        from phantom.workers.models import load_model_cached

        return load_model_cached(source.name, trust_remote_code=trust_remote_code).tokenizer
    return _auto_tokenizer(source, trust_remote_code)


def _auto_tokenizer(source: ModelSource, trust_remote_code: bool):
    from transformers import AutoTokenizer

    local = source.kind == "local"
    try:
        return AutoTokenizer.from_pretrained(
            str(source.path) if local else source.name,
            trust_remote_code=trust_remote_code, local_files_only=local or source.cached,
        )
    except (OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"Unknown model '{source.name}' in `models`: {text}") from None
