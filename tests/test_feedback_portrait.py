"""Segment portrait: on a small hand-made store every share and lift is checked against counts made here, and
every test statistic against SciPy (Fisher's exact test, chi-square, Benjamini–Hochberg), an implementation
independent of the report's own."""

import datetime as dt
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from motorcade.errors import MotorcadeError
from motorcade.feedback import stats
from motorcade.feedback.portrait import compute_portrait
from motorcade.model import Store
from motorcade.store import open_store
from motorcade.tags.base import TagDefinition

scipy_stats = pytest.importorskip("scipy.stats")

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, tzinfo=UTC)

# index: persona, vip, mileage, gender. The segment "lapsed" is people 0-7.
PERSONA = ["family"] * 6 + ["business"] * 2 + ["family"] * 3 + ["business"] * 7 + [None, None]
VIP = [True] + [False] * 7 + [True] * 8 + [False] * 4
GENDER = ["M"] * 7 + ["F"] + ["F"] * 6 + ["M"] * 6
SEGMENT = set(range(8))


@pytest.fixture
def portrait_store(tmp_path):
    store = open_store(tmp_path / "portrait.db")
    store.upsert_stores([Store("SH01", "一店", "集团"), Store("SH02", "二店", "集团")])
    ids = []
    for i in range(20):
        pid = store.create_person({"name": f"P{i}", "gender": GENDER[i]})
        ids.append(pid)
        store.conn.execute("INSERT INTO person_relations (person_id, kind, target_id) VALUES (?, 'home_store', ?)",
                           (pid, "SH01" if i % 2 == 0 else "SH02"))
    store.define_tags([TagDefinition("persona", "string", "persona"), TagDefinition("vip", "boolean", "vip"),
                       TagDefinition("mileage", "number", "km")], calculator="test", calculator_version="1")
    values = [(ids[i], "persona", PERSONA[i]) for i in range(20) if PERSONA[i]]
    values += [(ids[i], "vip", int(VIP[i])) for i in range(20)]
    values += [(ids[i], "mileage", i * 1000) for i in range(20)]
    store.write_tag_values(values, tags=["persona", "vip", "mileage"], calculator="test", calculator_version="1",
                           computed_at=NOW)
    for name, members in (("lapsed", [ids[i] for i in SEGMENT]), ("owners", [ids[i] for i in range(16)])):
        store.record_segment_run(name, members, revision="r1", as_of=NOW, computed_at=NOW, duration_ms=1.0,
                                 plan=None)
    return store, ids


def _labels(report):
    return {a.attribute: {v.value: v for v in a.values} for a in report.attributes}


def test_shares_and_lift_match_the_counts(portrait_store):
    store, _ = portrait_store
    report = compute_portrait(store, "lapsed", profile=["gender"])
    assert (report.segment_size, report.base_size, report.rest_size) == (8, 20, 12)
    values = _labels(report)
    family = values["persona"]["family"]
    assert (family.segment_count, family.base_count, family.rest_count) == (6, 9, 3)
    assert family.segment_share == pytest.approx(6 / 8) and family.base_share == pytest.approx(9 / 20)
    assert family.lift == pytest.approx((6 / 8) / (9 / 20))
    assert values["persona"]["(none)"].segment_count == 0 and values["persona"]["(none)"].base_count == 2
    assert values["vip"]["true"].segment_count == 1 and values["vip"]["true"].base_count == 9
    # mileage 0..19 000 km: the base's quartiles are 4 750, 9 500 and 14 250
    assert [(v.value, v.segment_count, v.base_count) for v in values["mileage"].values()] == [
        ("0 – <4,750", 5, 5), ("4,750 – <9,500", 3, 5), ("9,500 – <14,250", 0, 5), ("≥ 14,250", 0, 5)]
    assert values["gender"]["F"].segment_count == 1 and values["gender"]["F"].base_count == 7


def test_tests_and_correction_match_scipy(portrait_store):
    store, _ = portrait_store
    report = compute_portrait(store, "lapsed", profile=["gender"])
    columns = {
        "persona": [PERSONA[i] or "(none)" for i in range(20)],
        "vip": ["true" if v else "false" for v in VIP],
        "mileage": [("0 – <4,750", "4,750 – <9,500", "9,500 – <14,250", "≥ 14,250")[min(i // 5, 3)]
                    for i in range(20)],
        "gender": GENDER,
    }
    rest = [i for i in range(20) if i not in SEGMENT]
    expected_p, expected_v, value_p = {}, {}, {}
    for attribute, column in columns.items():
        cats = sorted(set(column))
        table = [[sum(1 for i in SEGMENT if column[i] == c) for c in cats],
                 [sum(1 for i in rest if column[i] == c) for c in cats]]
        chi2, p, df, _ = scipy_stats.chi2_contingency(table, correction=False)
        expected_p[attribute] = p
        expected_v[attribute] = math.sqrt(chi2 / 20)
        for j, c in enumerate(cats):
            a, c2 = table[0][j], table[1][j]
            value_p[(attribute, c)] = scipy_stats.fisher_exact([[a, 8 - a], [c2, 12 - c2]]).pvalue
    got = {a.attribute: a for a in report.attributes}
    assert set(got) == set(columns)
    for attribute in columns:
        assert got[attribute].p_value == pytest.approx(expected_p[attribute], rel=1e-9)
        assert got[attribute].cramers_v == pytest.approx(expected_v[attribute], rel=1e-9)
    attribute_order = list(expected_p)
    attribute_q = scipy_stats.false_discovery_control([expected_p[a] for a in attribute_order])
    for attribute, q in zip(attribute_order, attribute_q):
        assert got[attribute].q_value == pytest.approx(q, rel=1e-9)
    keys = list(value_p)
    value_q = dict(zip(keys, scipy_stats.false_discovery_control([value_p[k] for k in keys])))
    for a in report.attributes:
        for v in a.values:
            assert v.p_value == pytest.approx(value_p[(a.attribute, v.value)], rel=1e-6)
            assert v.q_value == pytest.approx(value_q[(a.attribute, v.value)], rel=1e-6)
    # sorted by how much the attribute distinguishes the segment
    assert [a.attribute for a in report.attributes] == sorted(expected_v, key=lambda k: -expected_v[k])


def test_against_another_segment_and_store_scope(portrait_store):
    store, _ = portrait_store
    report = compute_portrait(store, "lapsed", against="owners", tags=["vip"])
    assert (report.segment_size, report.base_size, report.rest_size) == (8, 16, 8)
    vip = _labels(report)["vip"]
    assert vip["true"].base_count == 9 and vip["true"].base_share == pytest.approx(9 / 16)  # 0 and 8-15
    sh01 = compute_portrait(store, "lapsed", tags=["persona"], store_id="SH01")
    assert (sh01.segment_size, sh01.base_size) == (4, 10)  # the even indexes
    family = _labels(sh01)["persona"]["family"]
    assert (family.segment_count, family.base_count) == (3, 5)  # 0, 2, 4 and 8, 10
    with pytest.raises(MotorcadeError, match="has not been computed") as err:
        compute_portrait(store, "lapsd")
    assert "lapsed" in err.value.hint
    with pytest.raises(MotorcadeError, match="no tag named"):
        compute_portrait(store, "lapsed", tags=["persona_x"])


@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_fisher_exact_matches_scipy(a, b, c, d):
    assert stats.fisher_exact(a, b, c, d) == pytest.approx(scipy_stats.fisher_exact([[a, b], [c, d]]).pvalue,
                                                           rel=1e-6, abs=1e-12)


@given(st.floats(0, 400), st.integers(1, 60))
def test_chi_square_tail_matches_scipy(x, df):
    assert stats.chi_square_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), rel=1e-8, abs=1e-300)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_benjamini_hochberg_matches_scipy(p):
    assert stats.benjamini_hochberg(p) == pytest.approx(list(scipy_stats.false_discovery_control(p)), abs=1e-12)


def test_cli_portrait(portrait_store, motorcade_project, tmp_path):
    import shutil

    from click.testing import CliRunner

    from motorcade.cli import build_cli

    store, _ = portrait_store
    store.close()
    motorcade_project.store.close()
    shutil.copy(store.path, motorcade_project.store.path)
    base = ["--project", str(motorcade_project.directory), "report", "portrait", "lapsed"]
    runner = CliRunner()
    result = runner.invoke(build_cli(), [*base, "--attribute", "gender", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["people"] == {"segment": 8, "base": 20, "rest": 12}
    assert {a["attribute"] for a in data["attributes"]} == {"persona", "vip", "mileage", "gender"}
    out = tmp_path / "portrait.html"
    result = runner.invoke(build_cli(), [*base, "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "What distinguishes the segment" in page and "<svg" in page and "Cramér" in page


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c", None])), min_size=2, max_size=40))
def test_one_attribute_matches_scipy_on_generated_people(people):
    from motorcade.feedback.portrait import categorize, compare

    values = {i: v for i, (_, v) in enumerate(people) if v is not None}
    segment = {i for i, (member, _) in enumerate(people) if member}
    base = set(range(len(people)))
    categories, order = categorize(values, sorted(base), "string")
    figures = compare("x", "tag", categories, order, segment, base)
    column = {i: v or "(none)" for i, (_, v) in enumerate(people)}
    rest = base - segment
    assert sorted(v.value for v in figures.values) == sorted(set(column.values()))
    for v in figures.values:
        k_seg = sum(1 for i in segment if column[i] == v.value)
        k_rest = sum(1 for i in rest if column[i] == v.value)
        assert (v.segment_count, v.rest_count, v.base_count) == (k_seg, k_rest, k_seg + k_rest)
        assert v.segment_share == pytest.approx(k_seg / len(segment) if segment else 0.0)
        assert v.p_value == pytest.approx(scipy_stats.fisher_exact(
            [[k_seg, len(segment) - k_seg], [k_rest, len(rest) - k_rest]]).pvalue, rel=1e-6, abs=1e-12)
    cats = sorted(set(column.values()))
    table = [[sum(1 for i in group if column[i] == c) for c in cats] for group in (segment, rest)]
    kept = [j for j in range(len(cats)) if table[0][j] + table[1][j]]
    if segment and rest and len(kept) > 1:
        chi2, p, df, _ = scipy_stats.chi2_contingency(table, correction=False)
        assert (figures.chi_square, figures.df) == (pytest.approx(chi2, rel=1e-9, abs=1e-12), df)
        assert figures.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)
        assert figures.cramers_v == pytest.approx(math.sqrt(chi2 / len(people)), rel=1e-9, abs=1e-12)
    else:
        assert (figures.p_value, figures.cramers_v) == (1.0, 0.0)
