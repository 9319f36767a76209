"""The report: the paper's figures and tables, registered with the views they read, and the
pages built from them.

- :mod:`~phantom.analysis.report.registry`: :data:`REPORT`, the figures and tables (key, caption, the
  views read, the draw function or the ``SELECT``);
- :mod:`~phantom.analysis.report.figures`, :mod:`~phantom.analysis.report.figures_arch`,
  :mod:`~phantom.analysis.report.tables`: the entries (this face imports them all, so :data:`REPORT`
  is complete wherever it is read);
- :mod:`~phantom.analysis.report.draw`: what the figures share (panels, PNG);
- :mod:`~phantom.analysis.report.page`: the HTML report ``phantom analyze`` writes;
- :mod:`~phantom.analysis.report.summary_text`: the lines ``phantom analyze`` prints.
"""

from __future__ import annotations

from phantom.analysis.report import figures, figures_arch, tables  # noqa: F401  (registers every entry)
from phantom.analysis.report.draw import png
from phantom.analysis.report.page import build_report
from phantom.analysis.report.registry import REPORT, FigureEntry, TableEntry

__all__ = ["REPORT", "FigureEntry", "TableEntry", "build_report", "png"]
