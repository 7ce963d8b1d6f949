"""Segment portrait (车主画像): what distinguishes a segment's people from a base group.

For every tag (and every profile attribute asked for) each person has one **value**: a tag's value,
``(none)`` without one; numbers (with more than six distinct values) fall into the base's quartiles;
dates into years; text beyond the base's ten most common values into ``(other)``. Then, per value:

- **share** in the segment and in the base, and the **lift** = segment share / base share;
- **Fisher's exact test** (two-sided) of the segment against the *rest* of the base (base people not in
  the segment: the segment is usually part of the base, and a group compared with itself proves
  nothing);

and per attribute **Pearson's chi-square test** of independence (segment vs rest × values) with
**Cramér's V** (√(χ² / n), 0 = the same distribution, 1 = nothing in common) as the measure of how much
the attribute distinguishes the segment; attributes are sorted by it. Many values and attributes are
tested at once, so both kinds of p-value are corrected by the **Benjamini–Hochberg** procedure (the
false discovery rate is held at ``alpha``, 5 %): a value or attribute is *significant* when its q-value is
below ``alpha``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

import attrs

from ..errors import MotorcadeError
from . import stats
from .common import check_store, pct, scope_text
from .html import BarChart, Section, Series, Table

NO_VALUE = "(none)"
OTHER = "(other)"
TOP_VALUES = 10  # text values shown by name; the rest are "(other)"
BIN_ABOVE = 6  # numbers with more distinct values than this are binned into quartiles
CHARTED_ATTRIBUTES = 6
ALL_PEOPLE = "all people"


@attrs.frozen
class ValueFigures:
    value: str
    segment_count: int
    segment_share: float
    base_count: int
    base_share: float
    rest_count: int
    lift: float | None
    p_value: float
    q_value: float = 1.0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class AttributeFigures:
    attribute: str
    source: str  # "tag" or "profile"
    chi_square: float
    df: int
    p_value: float
    cramers_v: float
    values: tuple[ValueFigures, ...] = attrs.field(converter=tuple)
    q_value: float = 1.0

    def to_dict(self) -> dict:
        return {"attribute": self.attribute, "source": self.source, "cramers_v": self.cramers_v,
                "chi_square": self.chi_square, "df": self.df, "p_value": self.p_value, "q_value": self.q_value,
                "values": [v.to_dict() for v in self.values]}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_text(value: float) -> str:
    return f"{value:,.6g}"


def categorize(values: dict[int, Any], base: Sequence[int], kind: str | None,
               people: Sequence[int] = ()) -> tuple[dict[int, str], list[str]]:
    """Each person's category (of ``people`` and the base), and the categories in display order, for one
    attribute.

    ``values`` maps person ids to raw values (missing = no value); ``kind`` is a tag type (``number``,
    ``date``, ``boolean``, ``string``) or None for a profile attribute (binned when all its values are numbers).
    Bins and the top values are decided on the base."""
    present = {p: v for p, v in values.items() if v is not None and v != ""}
    base_values = [present[p] for p in base if p in present]
    numeric = kind == "number" or (kind is None and base_values and all(_is_number(v) for v in base_values))
    if kind == "boolean":
        labels = {p: "true" if v in (1, True, "1", "true") else "false" for p, v in present.items()}
        order = ["true", "false"]
    elif kind == "date":
        labels = {p: str(v)[:4] for p, v in present.items()}
        order = sorted(set(labels.values()))
    elif numeric and len(set(base_values)) > BIN_ABOVE and all(_is_number(v) for v in present.values()):
        cuts = sorted(set(statistics.quantiles([float(v) for v in base_values], n=4, method="inclusive")))
        low, high = min(map(float, present.values())), max(map(float, present.values()))
        edges = [low, *[c for c in cuts if low < c <= high], math.inf]
        names = []
        for i in range(len(edges) - 1):
            names.append(f"≥ {_number_text(edges[i])}" if edges[i + 1] == math.inf
                         else f"{_number_text(edges[i])} – <{_number_text(edges[i + 1])}")

        def bin_of(v: float) -> str:
            for i in range(len(edges) - 1):
                if v < edges[i + 1]:
                    return names[i]
            return names[-1]

        labels = {p: bin_of(float(v)) for p, v in present.items()}
        order = names
    else:
        labels = {p: str(v) if not _is_number(v) else _number_text(v) for p, v in present.items()}
        counts: dict[str, int] = {}
        for p in base:
            if p in labels:
                counts[labels[p]] = counts.get(labels[p], 0) + 1
        top = sorted(counts, key=lambda v: (-counts[v], v))[:TOP_VALUES]
        if len(set(labels.values())) > len(top):
            keep = set(top)
            labels = {p: (v if v in keep else OTHER) for p, v in labels.items()}
            top.append(OTHER)
        order = top or sorted(set(labels.values()))
    categories = {p: labels.get(p, NO_VALUE) for p in values.keys() | set(base) | set(people)}
    if NO_VALUE in categories.values() or not order:
        order = [*order, NO_VALUE]
    return categories, order


def compare(attribute: str, source: str, categories: dict[int, str], order: Sequence[str],
            segment: set[int], base: set[int]) -> AttributeFigures:
    """The figures of one attribute: per value shares, lift and Fisher's test; chi-square and Cramér's V."""
    rest = base - segment
    seg_n, base_n, rest_n = len(segment), len(base), len(rest)

    def count(people: set[int]) -> dict[str, int]:
        out = dict.fromkeys(order, 0)
        for p in people:
            label = categories.get(p, NO_VALUE)
            out[label] = out.get(label, 0) + 1
        return out

    seg_counts, base_counts, rest_counts = count(segment), count(base), count(rest)
    values = []
    for value in order:
        k_seg, k_base, k_rest = seg_counts[value], base_counts[value], rest_counts[value]
        seg_share = k_seg / seg_n if seg_n else 0.0
        base_share = k_base / base_n if base_n else 0.0
        values.append(ValueFigures(
            value=value, segment_count=k_seg, segment_share=seg_share, base_count=k_base, base_share=base_share,
            rest_count=k_rest, lift=seg_share / base_share if base_share else None,
            p_value=stats.fisher_exact(k_seg, seg_n - k_seg, k_rest, rest_n - k_rest),
        ))
    chi2, df, p = stats.chi_square_independence([[seg_counts[v] for v in order], [rest_counts[v] for v in order]])
    n = seg_n + rest_n
    cramers_v = math.sqrt(chi2 / n) if n and df else 0.0
    return AttributeFigures(attribute, source, chi2, df, p, min(1.0, cramers_v), values)


def correct(attributes: Sequence[AttributeFigures]) -> list[AttributeFigures]:
    """Benjamini–Hochberg q-values over the attributes' p-values and, separately, over all values' p-values."""
    attribute_q = stats.benjamini_hochberg([a.p_value for a in attributes])
    value_q = iter(stats.benjamini_hochberg([v.p_value for a in attributes for v in a.values]))
    out = []
    for a, q in zip(attributes, attribute_q):
        values = [attrs.evolve(v, q_value=next(value_q)) for v in a.values]
        out.append(attrs.evolve(a, q_value=q, values=values))
    return out


@attrs.frozen
class PortraitReport:
    segment: str
    against: str
    segment_size: int
    base_size: int
    rest_size: int
    attributes: tuple[AttributeFigures, ...] = attrs.field(converter=tuple)
    alpha: float = 0.05
    scope: str = ""
    store_id: str | None = None

    @property
    def title(self) -> str:
        return f"Segment portrait · {self.segment}"

    @property
    def subtitle(self) -> str:
        return f"{self.segment} ({self.segment_size:,} people) against {self.against} ({self.base_size:,}); {self.scope}"

    def to_dict(self) -> dict:
        return {"report": "portrait", "segment": self.segment, "against": self.against, "store": self.store_id,
                "alpha": self.alpha, "people": {"segment": self.segment_size, "base": self.base_size,
                                                "rest": self.rest_size},
                "attributes": [a.to_dict() for a in self.attributes]}

    def _top_value(self, a: AttributeFigures) -> str:
        over = [v for v in a.values if v.lift is not None and v.segment_count]
        if not over:
            return "–"
        best = max(over, key=lambda v: (v.lift, v.segment_count))
        return f"{best.value} (×{best.lift:.2f})"

    def sections(self) -> list[Section]:
        text = (f"Shares in {self.segment} against {self.against}; lift = segment share / base share. Tests compare "
                f"the segment with the rest of the base ({self.rest_size:,} people): Fisher's exact test per value, "
                "Pearson's chi-square per attribute, both corrected for many comparisons by Benjamini–Hochberg "
                f"(false discovery rate {self.alpha:.0%}); * = significant. Attributes are sorted by Cramér's V "
                "(0: the same distribution as the rest; 1: nothing in common).")
        if not self.rest_size:
            text += f"\nEvery person of {self.against} is in {self.segment}: there is nothing to compare with."
        rows = [(a.attribute, a.source, f"{a.cramers_v:.3f}", f"{a.chi_square:,.2f}", str(a.df), _p_text(a.p_value),
                 _p_text(a.q_value) + (" *" if a.q_value < self.alpha else ""), self._top_value(a))
                for a in self.attributes]
        shown = self.attributes[:12]
        out = [Section("What distinguishes the segment", text=text,
                       table=Table(("attribute", "from", "Cramér's V", "χ²", "df", "p", "q", "highest lift"), rows,
                                   numeric=(2, 3, 4, 5, 6)),
                       chart=BarChart([a.attribute for a in shown], [Series("Cramér's V", [a.cramers_v for a in shown])],
                                      y_label="Cramér's V"))]
        for i, a in enumerate(self.attributes):
            value_rows = [(v.value, f"{v.segment_count:,}", pct(v.segment_share), f"{v.base_count:,}", pct(v.base_share),
                           "–" if v.lift is None else f"×{v.lift:.2f}", _p_text(v.p_value),
                           _p_text(v.q_value) + (" *" if v.q_value < self.alpha else "")) for v in a.values]
            chart = None
            if i < CHARTED_ATTRIBUTES:
                chart = BarChart([v.value for v in a.values],
                                 [Series(self.segment, [v.segment_share for v in a.values]),
                                  Series(self.against, [v.base_share for v in a.values])],
                                 unit="%", y_label="share of people")
            out.append(Section(f"{a.attribute} (V = {a.cramers_v:.3f})",
                               table=Table(("value", "segment", "share", "base", "share", "lift", "p", "q"),
                                           value_rows),
                               chart=chart))
        return out


def _p_text(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def compute_portrait(store, segment: str, *, against: str | None = None, tags: Sequence[str] | None = None,
                     profile: Sequence[str] = (), alpha: float = 0.05, store_id: str | None = None,
                     segments: Sequence[str] = ()) -> PortraitReport:
    """The portrait of ``segment`` against the segment ``against`` (default: all people).

    ``tags``: the tags to describe (default: every tag with values); ``profile``: profile attributes (keys
    of the people's attributes). ``segments``: the segment names of the rules, for the did-you-mean hint."""
    check_store(store, store_id)
    if not 0 < alpha < 1:
        raise MotorcadeError(f"--alpha must be between 0 and 1, got {alpha}", hint="e.g. 0.05")
    for key in profile:
        if not key or '"' in key or "\\" in key:
            raise MotorcadeError(f"cannot read the profile attribute {key!r}",
                                 hint="name a key of the people's attributes, e.g. --attribute gender")
    computed = store.computed_segments()
    for name in (segment, against):
        if name is not None and name not in computed:
            from motorcade.dsl.errors import did_you_mean

            in_rules = name in segments
            raise MotorcadeError(
                f"segment {name!r} has not been computed in {store.path}",
                hint=("compute it first: motorcade segments" if in_rules else
                      did_you_mean(name, {*computed, *segments}) or
                      (f"computed segments: {', '.join(computed)}" if computed else
                       "compute the segments first: motorcade segments")))
    population = set(store.portrait_population(store_id))
    members = set(store.segment_member_ids(segment)) & population
    base = (set(store.segment_member_ids(against)) & population) if against else population
    if not base:
        raise MotorcadeError(f"{against or 'the store'} has no people" + (f" at store {store_id}" if store_id else ""),
                             hint="compare against another segment, or check --store")
    definitions = {d["name"]: d for d in store.tag_definitions()}
    chosen = list(tags) if tags else [t for t in store.tags_with_values()]
    unknown = [t for t in chosen if t not in definitions and t not in store.tags_with_values()]
    if unknown:
        from motorcade.dsl.errors import did_you_mean

        raise MotorcadeError(f"no tag named {unknown[0]!r}",
                             hint=did_you_mean(unknown[0], definitions) or "`motorcade tags list` shows the tags")
    people = members | base
    figures = []
    for tag in chosen:
        values = {p: v for p, v in store.tag_values_of(tag).items() if p in people}
        categories, order = categorize(values, sorted(base), definitions.get(tag, {}).get("type"), people)
        figures.append(compare(tag, "tag", categories, order, members, base))
    for key in profile:
        values = {p: v for p, v in store.profile_values(key).items() if p in people}
        categories, order = categorize(values, sorted(base), None, people)
        figures.append(compare(key, "profile", categories, order, members, base))
    figures = correct(figures)
    figures.sort(key=lambda a: (-a.cramers_v, a.p_value, a.attribute))
    return PortraitReport(segment, against or ALL_PEOPLE, len(members), len(base), len(base - members), figures,
                          alpha, scope_text(store, store_id), store_id)
