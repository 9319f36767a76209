"""``phantom sentences check``: the sentences on a model at step 0 (:func:`phantom.workers.check_sentences`)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sentences", help="inspect the sentence set on a model")
    ssub = s.add_subparsers(dest="sentences_command", metavar="ACTION", required=True)
    chk = ssub.add_parser("check", help="token ids, G_max, ranks, Φ₀ and hardness per sentence")
    chk.add_argument("--model", required=True)
    chk.add_argument("--sentences", default=None, help="sentences YAML (default: the shipped sentences.yaml)")
    chk.add_argument("--trust-remote-code", action="store_true")
    chk.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from phantom.workers import check_sentences, is_hard, load_model, load_sentences

    sentences = load_sentences(args.sentences)
    loaded = load_model(args.model, trust_remote_code=args.trust_remote_code,
                        progress=lambda m: print(m, file=sys.stderr))
    print(f"model {args.model} ({loaded.family}, {'tied' if loaded.tied else 'untied'} head)")
    print(f"{'sentence':<12} {'ctx':>3} {'g':>7} {'c':>7} {'G_max':>7} {'G_head':>7} {'rank_g':>7} {'rank_c':>7}"
          f" {'phi0':>9} {'pool':>5}  hard")
    n_hard = n_ok = 0
    for check in check_sentences(loaded, sentences):
        if check.skipped:
            print(f"{check.sentence_id:<12} skipped: {check.skipped}")
            continue
        for r in check.rows:
            hard = is_hard(r)
            n_ok += 1
            n_hard += hard
            print(f"{check.sentence_id:<12} {r['context_id']:>3} {r['g']:>7} {r['c']:>7} {r['gmax']:>7.4f} "
                  f"{check.g_head:>7.4f} {r['rank_g']:>7} {r['rank_c']:>7} {r['phi']:>+9.4f} {r['pool_size']:>5}  "
                  f"{'yes' if hard else 'no'}")
    print(f"{n_hard} of {n_ok} usable contexts are hard (phi0 <= 0)")
    return 0
