"""Junk rules per identifier type (``[identity]``): phone rules never reject CRM ids; every identifier
flagged or dropped at ingest is counted in the summary and listable."""

import json

import attrs
import pytest
from click.testing import CliRunner

from motorcade.errors import ConfigError
from motorcade.identity.guards import DEFAULT_PRIORITY, OVER_LIMIT, IdentityGuards
from motorcade.sources.base import EventRecord, PersonRecord, RawIdentifier
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store


def person(key, **ids):
    return PersonRecord(source_key=key, identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()), position=key)


def order(dedup, **ids):
    return EventRecord(name="order", ts="2025-01-02 10:00:00", identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()),
                       dedup_key=dedup, position=dedup)


# -- the guards alone (pure functions of the configuration; the ingest tests below use them for real) --

def test_guards_from_an_empty_configuration_are_the_documented_defaults():
    for table in (None, {}):
        guards = IdentityGuards.from_config(table)
        assert guards.priority == DEFAULT_PRIORITY
        assert guards.limit("phone") == guards.limit("crm_id") == 5
        assert guards.rules_of("phone") == {"placeholder", "same_character", "repeated_tail"}
        assert guards.rules_of("crm_id") == {"placeholder"}
        assert guards.advisor_phones_link is False and guards.accept_unknown_ranges is False
        assert guards.region == "CN"
        # the built-in junk lists, each value in its raw and its cleaned form
        assert {"13800138000", "+8613800138000", "18888888888", "+8618888888888"} <= guards.junk["phone"]
        assert "test@test.com" in guards.junk["email"]
        assert set(guards.junk) == {"phone", "email"}


def test_guards_built_in_code_have_the_defaults_of_an_empty_configuration_but_no_junk_list():
    built, configured = IdentityGuards(), IdentityGuards.from_config({})
    assert attrs.evolve(built, junk=configured.junk) == configured
    assert built.accept_unknown_ranges is False and built.junk == {}


def test_guards_read_every_setting():
    guards = IdentityGuards.from_config({
        "priority": ["phone", "crm_id"], "max_records_per_source": "7", "advisor_phones_link": True,
        "junk_rules": ["same_character"],
        "phone": {"max_records_per_source": 3, "junk": ["139 1234 0000", 13912340001], "accept_unknown_ranges": True},
        "email": {"junk": ["Nobody@Example.COM"]},
        "crm_id": {"junk": ["C-0"], "junk_rules": ["placeholder", "repeated_tail"]},
        "wechat_unionid": {"max_records_per_source": 0},
    }, region="CN")
    assert guards.priority == ("phone", "crm_id")
    assert (guards.limit("phone"), guards.limit("crm_id"), guards.limit("wechat_unionid")) == (3, 7, 0)
    assert guards.max_records == {"phone": 3, "wechat_unionid": 0}
    assert guards.advisor_phones_link is True and guards.accept_unknown_ranges is True
    # listed junk adds to the built-in values, raw and cleaned; a value that does not clean is kept as typed
    assert {"139 1234 0000", "+8613912340000", "13912340001", "+8613912340001", "+8613800138000"} <= guards.junk["phone"]
    assert {"Nobody@Example.COM", "nobody@example.com", "test@test.com"} <= guards.junk["email"]
    assert guards.junk["crm_id"] == {"C-0"}
    assert guards.rules_of("crm_id") == {"placeholder", "repeated_tail"}
    assert guards.rules_of("phone") == {"placeholder", "same_character", "repeated_tail"}  # phone keeps its own
    assert guards.rules_of("lead_id") == {"same_character"}  # the [identity] default
    assert guards.junk_reason("phone", "+8613912340000") == "junk value"
    assert guards.junk_reason("crm_id", "C-0") == "junk value"
    assert guards.junk_reason("lead_id", "C-0") is None


def test_listed_junk_phones_are_cleaned_in_the_project_region():
    guards = IdentityGuards.from_config({"phone": {"junk": ["650 253 0000"]}}, region="US")
    assert guards.region == "US"
    assert guards.junk_reason("phone", "+16502530000") == "junk value"
    assert "13800138000" in guards.junk["phone"]  # the built-in values stay, as typed


def test_guards_read_the_region_from_the_identity_table_when_no_region_is_given():
    """`[identity] phone_region` decides how listed junk phones are cleaned, whichever command builds the guards
    (identity unsplit built them without it, so a US project's junk list was cleaned as Chinese numbers)."""
    guards = IdentityGuards.from_config({"phone_region": "US", "phone": {"junk": ["650 253 0000"]}})
    assert guards.region == "US"
    assert guards.junk_reason("phone", "+16502530000") == "junk value"
    assert IdentityGuards.from_config({"phone_region": "US"}, region="CN").region == "CN"  # an explicit region wins


@pytest.mark.parametrize("table, match", [
    ({"max_records_per_source": "five"}, "max_records_per_source must be a whole number"),
    ({"max_records_per_source": None}, "max_records_per_source must be a whole number"),
    ({"phone": {"max_records_per_source": "3.5"}}, "max_records_per_source must be a whole number"),
    ({"phone": {"accept_unknown_ranges": "yes"}}, "accept_unknown_ranges must be true or false"),
    ({"phone": {"accept_unknown_ranges": 1}}, "accept_unknown_ranges must be true or false"),
    ({"junk_rules": "placeholder"}, r"\[identity\] junk_rules must be a list of rule names"),
    ({"junk_rules": 5}, r"\[identity\] junk_rules must be a list of rule names"),
    ({"crm_id": {"junk_rules": "placeholder"}}, r"\[identity.crm_id\] junk_rules must be a list of rule names"),
    ({"junk_rules": ["placeholder", "palceholder", "typo"]}, r"\[identity\] junk_rules: unknown junk rule\(s\) 'palceholder', 'typo'"),
])
def test_bad_identity_settings_are_config_errors_that_say_what_to_write(table, match):
    with pytest.raises(ConfigError, match=match) as caught:
        IdentityGuards.from_config(table)
    assert caught.value.hint


def test_junk_rule_errors_hint_at_the_setting_and_the_rules():
    with pytest.raises(ConfigError) as caught:
        IdentityGuards.from_config({"crm_id": {"junk_rules": "placeholder"}})
    assert caught.value.hint == 'e.g. junk_rules = ["placeholder"]'
    with pytest.raises(ConfigError) as caught:
        IdentityGuards.from_config({"junk_rules": ["nope"]})
    assert caught.value.hint.startswith("rules: placeholder (") and "repeated_tail (" in caught.value.hint
    assert IdentityGuards.from_config({"junk_rules": ("placeholder",)}).rules_of("crm_id") == {"placeholder"}
    assert IdentityGuards.from_config({"crm_id": {"junk_rules": []}}).rules_of("crm_id") == frozenset()


@pytest.mark.parametrize("type_, value, reason", [
    # placeholders, in any case, also behind a "+" (or a phone's "+86") and behind several
    ("crm_id", "unknown", "placeholder value"), ("crm_id", "UNKNOWN", "placeholder value"),
    ("crm_id", "N/A", "placeholder value"), ("crm_id", "0", "placeholder value"), ("crm_id", "未知", "placeholder value"),
    ("crm_id", "+unknown", "placeholder value"), ("crm_id", "++unknown", "placeholder value"),
    ("crm_id", "+++unknown", "placeholder value"),
    ("phone", "+86unknown", "placeholder value"), ("phone", "+860", "placeholder value"), ("phone", "86null", "placeholder value"),
    ("crm_id", "86null", None),  # only a phone's 86 is a country code
    ("wechat_unionid", "86null", None), ("wechat_openid", "+86none", None),  # also for types sorting after phone
    ("crm_id", "unknowns", None), ("crm_id", "C1", None), ("crm_id", "111", None), ("crm_id", "00000000", None),
    # phone: same character, 8 identical at the end
    ("phone", "+86111", "all characters the same"), ("phone", "+8611", None),
    ("phone", "+8613900000000", "phone ends in 8 identical digits"), ("phone", "+8613910000000", None),
    ("phone", "+8613800000001", None), ("phone", "+8613812345678", None), ("phone", "+16502530000", None),
])
def test_junk_reason_of_default_guards(type_, value, reason):
    assert IdentityGuards().junk_reason(type_, value) == reason
    assert IdentityGuards.from_config({}).junk_reason(type_, value) == reason


@pytest.mark.parametrize("rules, value, reason", [
    (["same_character"], "aaa", "all characters the same"), (["same_character"], "aa", None),
    (["same_character"], "aaaaaaaaaaaa", "all characters the same"), (["same_character"], "abaa", None),
    (["same_character"], "null", None),
    (["repeated_tail"], "00000000", "ends in 8 identical characters"), (["repeated_tail"], "0000000", None),
    (["repeated_tail"], "X-00000000", "ends in 8 identical characters"), (["repeated_tail"], "X-10000000", None),
    (["repeated_tail"], "aaa", None),
    (["repeated_tail"], "8600000000", "ends in 8 identical characters"),  # not the phone wording, whatever the type
    (["placeholder"], "aaa", None), (["placeholder"], "none", "placeholder value"),
    ([], "none", None), ([], "00000000", None),
])
def test_junk_reason_applies_only_the_configured_rules(rules, value, reason):
    guards = IdentityGuards.from_config({"lead_id": {"junk_rules": rules}, "wechat_unionid": {"junk_rules": rules}})
    assert guards.junk_reason("lead_id", value) == reason
    assert guards.junk_reason("wechat_unionid", value) == reason


def test_listed_junk_values_apply_whatever_the_rules():
    guards = IdentityGuards.from_config({"lead_id": {"junk": ["L-42"], "junk_rules": []}})
    assert guards.junk_reason("lead_id", "L-42") == "junk value"
    assert guards.junk_reason("lead_id", "L-43") is None
    assert guards.junk_reason("phone", "+8613800138000") == "junk value"  # long, and unlike any rule


def test_over_limit_reason_states_count_source_and_limit():
    guards = IdentityGuards.from_config({"max_records_per_source": 4, "phone": {"max_records_per_source": 2}})
    assert guards.over_limit_reason("phone", "crm", 3) == "shared by 3 records of source crm (limit 2 for phone)"
    assert guards.over_limit_reason("email", "dms", 9) == "shared by 9 records of source dms (limit 4 for email)"
    assert guards.over_limit_reason("email", "dms", 9).startswith(OVER_LIMIT)



def test_crm_ids_of_repeated_digits_are_real_ids(tmp_path):
    store = open_store(tmp_path / "s.db")
    ing = Ingestor(store, guards=IdentityGuards.from_config({}))
    people = ing.ingest_records("crm", [[person(k, crm_id=k, phone=p) for k, p in
                                         (("111", "13912340001"), ("222", "13912340002"), ("2222", "13912340003"))]])
    assert people.flagged == 0
    orders = ing.ingest_records("orders", [[order("o1", crm_id="111"), order("o2", crm_id="2222")]])
    assert (orders.rejected, orders.events) == (0, 2)
    for key in ("111", "2222"):
        pid = store.person_of_identifier("crm_id", key)
        assert pid is not None and pid == store.person_of_identifier("phone", f"+86139123400{'01' if key == '111' else '03'}")
    # phones keep their junk rules
    assert ing.guards.junk_reason("phone", "+8613911111111") == "phone ends in 8 identical digits"
    assert ing.guards.junk_reason("phone", "+8611111111111") == "all characters the same"
    # placeholders are junk for every type
    assert ing.guards.junk_reason("crm_id", "null") == "placeholder value"
    assert ing.guards.junk_reason("crm_id", "111") is None


def test_junk_rules_are_configurable_per_type():
    guards = IdentityGuards.from_config({"junk_rules": ["placeholder", "same_character"],
                                         "phone": {"junk_rules": ["placeholder"]},
                                         "lead_id": {"junk_rules": []}})
    assert guards.junk_reason("crm_id", "111") == "all characters the same"  # the [identity] default
    assert guards.junk_reason("phone", "+8613911111111") is None  # phone: placeholders only
    assert guards.junk_reason("lead_id", "null") is None  # no rules at all
    assert guards.junk_reason("lead_id", "13800138000") is None
    assert guards.junk_reason("phone", "+8613800138000") == "junk value"  # listed values still apply
    with pytest.raises(ConfigError, match="same_charakter"):
        IdentityGuards.from_config({"phone": {"junk_rules": ["same_charakter"]}})


def test_junk_identifiers_are_counted_as_flagged_and_listed(tmp_path):
    store = open_store(tmp_path / "s.db")
    guards = IdentityGuards.from_config({"crm_id": {"junk_rules": ["placeholder", "same_character"]}})
    ing = Ingestor(store, guards=guards)
    summary = ing.ingest_records("crm", [[person("K1", crm_id="111", phone="13912340001"),
                                          person("K2", crm_id="C2", phone="13800138000")]])
    assert summary.flagged == 2  # crm_id 111 and the junk phone, flagged as they were stored
    flagged = store.list_flagged_identifiers()
    assert {(f["type"], f["value"], f["reason"], f["records"]) for f in flagged} == {
        ("crm_id", "111", "all characters the same", 1), ("phone", "+8613800138000", "junk value", 1)}
    assert store.list_flagged_identifiers(type_="phone")[0]["value"] == "+8613800138000"
    again = ing.ingest_records("crm", [[person("K1", crm_id="111", phone="13912340001")]])
    assert again.flagged == 0  # nothing new


def test_cli_lists_flagged_identifiers_masked(motorcade_project):
    store = motorcade_project.store
    Ingestor(store).ingest_records("crm", [[person("K1", crm_id="C1", phone="13800138000")]])
    from motorcade.cli import build_cli

    out = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "identity", "flagged"])
    assert out.exit_code == 0, out.output
    assert "junk value" in out.output and "13800138000" not in out.output
    out = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "identity", "flagged",
                                           "--json"])
    rows = json.loads(out.output)
    assert rows[0]["type"] == "phone" and rows[0]["reason"] == "junk value" and "138000" not in rows[0]["value"]
