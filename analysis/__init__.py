"""Read what the workers wrote: DuckDB views over the Parquet results, the study's fits and
claims (science §4–5), the report's figures and tables.

The face (lazy: importing it loads neither DuckDB nor matplotlib) is what the command line and
the Python API call:

- :func:`analyze`: ``phantom analyze`` (every table, ``phantom.duckdb``, ``report.html``);
- :func:`query`, :func:`render`, :func:`check_read_only`: ``phantom query``;
- :func:`predict_blind`, :func:`prediction_lines`, :func:`prediction_json`: ``phantom predict``;
- :class:`AnalysisSettings`, :func:`parse_lr_ref`: the settings every analysis takes;
- :func:`connect_readonly`, :func:`one_line`, :data:`REGISTRY` (the views), :data:`REPORT`
  (the figures and tables): what :func:`phantom.open` reads through.

Modules: ``views`` (the registry of SQL views), ``db`` (connections), ``report``, ``commands``,
``stats``, ``settings``, ``schema``; ``testing`` writes synthetic results for the tests.
"""

from phantom.lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "analyze": "phantom.analysis.commands.analyze", "AnalysisResult": "phantom.analysis.commands.analyze",
    "query": "phantom.analysis.commands.query", "render": "phantom.analysis.commands.query",
    "check_read_only": "phantom.analysis.commands.query",
    "predict_blind": "phantom.analysis.commands.predict", "Prediction": "phantom.analysis.commands.predict",
    "prediction_lines": "phantom.analysis.commands.predict",
    "prediction_json": "phantom.analysis.commands.predict",
    "AnalysisSettings": "phantom.analysis.settings", "parse_lr_ref": "phantom.analysis.settings",
    "connect_readonly": "phantom.analysis.db", "resolve_results": "phantom.analysis.db",
    "one_line": "phantom.analysis.db",
    "REGISTRY": "phantom.analysis.views", "REPORT": "phantom.analysis.report",
})
