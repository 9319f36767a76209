"""The precision each trial was measured in (the label: phantom.analysis.schema.LABEL_SQL), and the guard that keeps one fit to one precision
(docs/design/precision.md).

A trial's precision *label* (column ``precision`` of ``trials``, ``trial_summary`` and the fits)
names the arithmetic of its steps and of its observables: ``fp32`` (both fp32), ``bf16/fp32``
(trained under bf16 autocast, observed in fp32: the policy since 2026-12-07), ``fp16/fp32``,
``fp64``; a record written before the precision columns existed gets the label its config and
device imply, observed in the training precision (``bf16`` then means both in bf16;
``auto-cuda``: ``training.precision: auto`` on a GPU, bf16 or fp16 — not recorded).

``precisions``: per (model, protocol) each label and its trials. Its check refuses, in one
line, a (model, protocol) whose measured trials carry more than one label — every fit of science
§5 is per (model, protocol) — unless the settings allow it (``mix_precisions``,
``--mix-precisions``); a fit that mixes them says so in its ``precision`` column
(``bf16/fp32 + fp32``).
"""

from __future__ import annotations

from phantom.errors import QueryError

from phantom.analysis.registry import ViewContext, view


def refuse_mixed(conn, relation: str, ctx: ViewContext) -> None:
    """QueryError naming the first (model, protocol) whose measured trials carry several
    precision labels, unless ``ctx.settings.mix_precisions``."""
    if ctx.settings.mix_precisions:
        return
    mixed = conn.execute(f"""
        SELECT model, protocol, string_agg(coalesce(precision, 'unknown') || ' (' || n_measured || ' trials)', ', '
                                           ORDER BY precision)
        FROM {relation} WHERE n_measured > 0
        GROUP BY model, protocol HAVING count(*) > 1
        ORDER BY model, protocol""").fetchall()
    if mixed:
        model, protocol, groups = mixed[0]
        more = f" (and {len(mixed) - 1} more model/protocol)" if len(mixed) > 1 else ""
        raise QueryError(
            f"the fits of {model} / {protocol} would mix precisions: {groups}{more}; analyse the results "
            "of one precision, or pass --mix-precisions (mix_precisions=True) to fit them together")


@view("precisions", reads=("trial_summary",), check=refuse_mixed)
def precisions(ctx: ViewContext) -> str:
    """Per (model, protocol) the precision labels of its trials: one per fit unless --mix-precisions"""
    return """
SELECT model, protocol, precision,
       count(*) AS n_trials,
       count(*) FILTER (WHERE evaluations IS NOT NULL) AS n_measured
FROM trial_summary
GROUP BY model, protocol, precision
ORDER BY model, protocol, precision NULLS LAST
"""
