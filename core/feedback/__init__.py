"""Feedback stage: reports that close the loop — funnels, campaign uplift against the holdout,
retention cohorts, the churn warning, attribution of conversions to touches and segment portraits — printed
in the terminal, as JSON, or as self-contained HTML.

- :mod:`motorcade.feedback.funnel`, :mod:`~motorcade.feedback.uplift`, :mod:`~motorcade.feedback.retention`,
  :mod:`~motorcade.feedback.churn`, :mod:`~motorcade.feedback.attribution`, :mod:`~motorcade.feedback.portrait`:
  ``compute_*(store, ...)`` returns a report object with ``title``, ``subtitle``, ``sections()`` and
  ``to_dict()``.
- :mod:`motorcade.feedback.html`: ``render_report(title, sections)`` (inline SVG charts, no network).
- :mod:`motorcade.feedback.render`: ``emit`` (table/json/html) and ``combined_html`` (several reports, one page).
- :mod:`motorcade.feedback.stats`: Wilson, Newcombe, Wald and Katz intervals; Fisher's exact test,
  chi-square, Benjamini–Hochberg.
"""
