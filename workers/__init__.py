"""One trial: a model loaded, trained on one sentence under one protocol, observed after every
step, written to Parquet (science §2–3). The Born gap and every observable: :mod:`.observables`.

The face (lazy: importing it loads no torch) is what the command line and the Python API call:

- :func:`trial_config`, :func:`run_alone`: one trial without Ray (``phantom trial``);
- :func:`load_model`: a model by name (tiny, embedded, local folder or hub id), converted once;
- :func:`check_sentences`, :class:`SentenceCheck`: the sentences at step 0 (``phantom sentences check``);
- :func:`measure_geometry`, :func:`write_geometry`: the bulk embedding geometry (``phantom geometry``);
- :func:`run_trial`, :func:`run_pack`, :class:`TrialResult`: the loop itself, as a sweep's
  worker runs it.

Modules: ``alone``, ``trial`` (the loop), ``engines`` / ``packs`` (one model or a pack of
trials), ``protocols``, ``observables``, ``models``, ``sentences``, ``probe``, ``geometry``,
``tiny``; ``testing`` helps the tests.
"""

from phantom.lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "trial_config": "phantom.workers.alone", "run_alone": "phantom.workers.alone",
    "load_model": "phantom.workers.models", "LoadedModel": "phantom.workers.models",
    "check_sentences": "phantom.workers.probe", "SentenceCheck": "phantom.workers.probe",
    "is_hard": "phantom.workers.probe", "load_sentences": "phantom.workers.sentences",
    "measure_geometry": "phantom.workers.geometry", "write_geometry": "phantom.workers.geometry",
    "run_trial": "phantom.workers.trial", "run_pack": "phantom.workers.trial",
    "TrialResult": "phantom.workers.trial",
})
