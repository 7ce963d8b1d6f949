"""Feedback stage: reports that close the loop — funnels, campaign uplift against the holdout,
retention cohorts and the churn warning — printed in the terminal, as JSON, or as self-contained HTML.

- :mod:`motorcade.feedback.funnel`, :mod:`~motorcade.feedback.uplift`, :mod:`~motorcade.feedback.retention`,
  :mod:`~motorcade.feedback.churn`: ``compute_*(store, ...)`` returns a report object with ``title``,
  ``subtitle``, ``sections()`` and ``to_dict()``.
- :mod:`motorcade.feedback.html`: ``render_report(title, sections)`` (inline SVG charts, no network).
- :mod:`motorcade.feedback.render`: ``emit`` (table/json/html) and ``combined_html`` (several reports, one page).
- :mod:`motorcade.feedback.stats`: Wilson, Newcombe, Wald and Katz intervals.
"""
