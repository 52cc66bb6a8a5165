from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowscope.analyzer.flows_config import (
    FlowRule,
    FlowsConfig,
    FlowsConfigError,
    RootFacts,
    name_slug,
    slugify,
)

DATA = Path(__file__).parent / "data" / "flows"


def test_good_file_loads_with_defaults() -> None:
    config = FlowsConfig.load(DATA / "good.yaml")
    assert config.flows == (
        FlowRule(name="Order Placement", id="order-placement", service="gateway", route="/orders*"),
        FlowRule(
            name="Premium Funding",
            id="premium-funding",
            operation="POST /wallet/*",
            attributes=(("customer.tier", "premium"), ("retry", "false")),
        ),
    )
    assert config.attribute_keys == ("customer.tier", "retry")


def test_matching_first_rule_wins_and_all_conditions_hold() -> None:
    config = FlowsConfig.load(DATA / "good.yaml")
    orders = RootFacts("gateway", "POST /orders", "/orders/{id}")
    assert config.match(orders) is config.flows[0]
    assert config.match(RootFacts("web", "POST /orders", "/orders")) is None
    premium = {"customer.tier": "premium", "retry": "false"}
    assert config.match(RootFacts("w", "POST /wallet/fund", "/fund", premium)) is config.flows[1]
    assert (
        config.match(RootFacts("w", "POST /wallet/fund", "/fund", {"customer.tier": "x"})) is None
    )


def test_empty_file_has_no_flows() -> None:
    assert FlowsConfig.parse("").flows == ()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_yaml.yaml", "not_yaml.yaml: not valid YAML"),
        ("unknown_top.yaml", "unknown_top.yaml: flow: unknown key (expected 'flows')"),
        ("missing_name.yaml", "missing_name.yaml: flows[0].name: required, a string"),
        ("bad_route.yaml", "bad_route.yaml: flows[1].match.route: must be a string"),
        ("duplicate_id.yaml", "duplicate_id.yaml: flows[1].id: 'a' is already used by flows[0]"),
        (
            "bad_attribute.yaml",
            "bad_attribute.yaml: flows[0].match.attributes.tier: must be a single value",
        ),
        ("empty_match.yaml", "empty_match.yaml: flows[0].match: give at least one condition"),
        ("unknown_match_key.yaml", "unknown_match_key.yaml: flows[0].match.path: unknown key"),
        ("bad_id.yaml", "bad_id.yaml: flows[0].id: 'Not A Slug' is not a slug"),
        ("not_mapping.yaml", "not_mapping.yaml: must be a mapping with a 'flows' list"),
    ],
)
def test_bad_files_name_the_key(name: str, message: str) -> None:
    with pytest.raises(FlowsConfigError) as caught:
        FlowsConfig.load(DATA / name)
    assert str(caught.value).startswith(str(DATA / name))
    assert message in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(FlowsConfigError, match="cannot read"):
        FlowsConfig.load(tmp_path / "absent.yaml")


def test_slugify() -> None:
    assert slugify("Order Placement") == "order-placement"
    assert slugify("  POST /orders/{id} ") == "post-orders-id"
    assert slugify("///") == "flow"
    # Automatic ids are made of this: it keeps dropping what is not ASCII, as it always
    # did, so the ids of flows with such names do not change.
    assert slugify("café POST /menü") == "caf-post-men"
    assert name_slug("Zahlung über Straße") == "zahlung-uber-strasse"  # rules fold accents


def test_names_without_an_ascii_form_get_distinct_ids() -> None:
    """Before, every name in a script without ASCII letters had the id ``flow``, and
    ``Order 注文`` and ``Order 取消`` both ``order``: a duplicate-id error."""
    config = FlowsConfig.parse(
        "flows:\n"
        "  - {name: 注文, match: {service: a}}\n"
        "  - {name: 取消, match: {service: b}}\n"
        "  - {name: Order 注文, match: {service: c}}\n"
        "  - {name: Order 取消, match: {service: d}}\n"
        "  - {name: Über uns, match: {service: e}}\n"
    )
    ids = [rule.id for rule in config.flows]
    assert len(set(ids)) == 5
    assert ids[0].startswith("flow-") and ids[2].startswith("order-")
    assert ids[4] == "uber-uns"
    assert all(slugify(flow_id) == flow_id for flow_id in ids)  # each is a valid slug


def test_a_long_name_gives_a_cut_id_that_stays_distinct() -> None:
    """Before, a rule named by a 2,000-character text had an id of that length."""
    long_a, long_b = "Report " + "x" * 2000, "Report " + "x" * 1999 + "y"
    config = FlowsConfig.parse(
        f"flows:\n  - {{name: {long_a}, match: {{service: a}}}}\n"
        f"  - {{name: {long_b}, match: {{service: b}}}}\n"
    )
    ids = [rule.id for rule in config.flows]
    assert ids[0] != ids[1]
    assert all(len(i) == 64 + 13 and slugify(i) == i for i in ids)
    assert ids[0].startswith("report-xxx")
    assert name_slug("a" * 64) == "a" * 64  # at the limit: unchanged, no hash


@pytest.mark.parametrize("value", ["{}", "0", '""', "text"])
def test_flows_that_is_not_a_list_is_an_error(value: str) -> None:
    """Before, `flows: {}`, `0` and `""` were taken as no rules at all."""
    with pytest.raises(FlowsConfigError, match="flows: must be a list"):
        FlowsConfig.parse(f"flows: {value}\n")
    assert FlowsConfig.parse("flows:\n").flows == ()  # nothing under it yet: no rules


def test_decimal_values_compare_as_the_exporter_stores_them() -> None:
    """YAML's 1.0 became "1.0" and 1.0e-7 "1e-07": the stored "1" and "1e-7" never
    matched (docs/analysis.md says values compare as stored)."""
    config = FlowsConfig.parse(
        "flows:\n"
        "  - {name: one, match: {attributes: {qty: 1.0}}}\n"
        "  - {name: tiny, match: {attributes: {ratio: 1.0e-7}}}\n"
        "  - {name: int, match: {attributes: {n: 3}}}\n"
    )
    assert [rule.attributes for rule in config.flows] == [
        (("qty", "1"),),
        (("ratio", "1e-7"),),
        (("n", "3"),),
    ]
    assert config.match(RootFacts("svc", "op", "/", {"qty": "1"})) is config.flows[0]


def test_numbers_yaml_1_1_reads_as_text_are_numbers() -> None:
    """PyYAML follows YAML 1.1: 2.5e3 and 1e3 were the text "2.5e3" and "1e3", never
    equal to the stored "2500" and "1000". Quoted, they stay text."""
    config = FlowsConfig.parse(
        'flows:\n  - {name: a, match: {attributes: {x: 2.5e3, y: 1e3, z: "1e3"}}}\n'
    )
    assert config.flows[0].attributes == (("x", "2500"), ("y", "1000"), ("z", "1e3"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("flows: [{name: Über uns, match: {service: a}}]".encode("latin-1"), "not UTF-8 text"),
        (b"\xff\xfe" + "flows: []".encode("utf-16-le"), None),
        (b"\xef\xbb\xbfflows: [{name: x, match: {service: a}}]", None),
    ],
)
def test_a_file_is_read_as_utf8_or_by_its_byte_order_mark(
    tmp_path: Path, data: bytes, message: str | None
) -> None:
    """A Latin-1 file was a UnicodeDecodeError traceback; YAML readers take UTF-16 and
    UTF-32 with a byte-order mark."""
    path = tmp_path / "flows.yaml"
    path.write_bytes(data)
    if message is None:
        FlowsConfig.load(path)
        return
    with pytest.raises(FlowsConfigError) as caught:
        FlowsConfig.load(path)
    assert str(caught.value).startswith(f"{path}: not UTF-8 text (byte 0xdc at offset 15)")


@pytest.mark.parametrize(
    "text",
    [
        "flows: [{name: a, match: {service: x}}]\nflows: [{name: b, match: {service: y}}]\n",
        "flows: [{name: a, match: {service: x, service: y}}]\n",
        "flows: [{name: a, match: {attributes: {r: us, r: eu}}}]\n",
    ],
)
def test_a_key_given_twice_is_an_error(text: str) -> None:
    """PyYAML kept the last: two pasted `flows:` lists silently lost the first."""
    with pytest.raises(FlowsConfigError, match="found the key '.*' twice"):
        FlowsConfig.parse(text)


@pytest.mark.parametrize("value", ["[]", '""', "0", "false"])
def test_attributes_that_are_no_mapping_are_an_error(value: str) -> None:
    """`attributes: []` was read as no conditions: the rule took every root of x."""
    with pytest.raises(FlowsConfigError, match="attributes: must be a mapping"):
        FlowsConfig.parse(f"flows: [{{name: a, match: {{service: x, attributes: {value}}}}}]\n")


def test_plain_values_are_read_as_yaml_1_2_reads_them() -> None:
    """PyYAML's 1.1: 017 was octal 15, 1:30 was 90, on/NO booleans, 1_000 was 1000 and
    a date a datetime: rules silently matched nothing, or other roots."""
    values = {
        "a": "017",
        "b": "0o21",
        "c": "0x1F",
        "d": "1_000",
        "e": "1:30",
        "f": "on",
        "g": "NO",
        "h": "2024-01-01T10:00:00Z",
        "i": "True",
        "j": "-5",
        "k": ".5",
    }
    inline = ", ".join(f"{k}: {v}" for k, v in values.items())
    config = FlowsConfig.parse(f"flows: [{{name: a, match: {{attributes: {{{inline}}}}}}}]\n")
    assert dict(config.flows[0].attributes) == {
        "a": "17",
        "b": "17",
        "c": "31",
        "d": "1_000",
        "e": "1:30",
        "f": "on",
        "g": "NO",
        "h": "2024-01-01T10:00:00Z",
        "i": "true",
        "j": "-5",
        "k": "0.5",
    }


def test_merge_keys_and_their_overrides_load() -> None:
    """The duplicate-key check built `<<` as a key: every file with merge keys failed."""
    config = FlowsConfig.parse(
        "flows:\n"
        "  - name: Order\n"
        "    match: &d {service: checkout, route: /order}\n"
        "  - name: Pay\n"
        "    match:\n"
        "      <<: *d\n"
        "      route: /pay\n"
    )
    assert [(rule.service, rule.route) for rule in config.flows] == [
        ("checkout", "/order"),
        ("checkout", "/pay"),
    ]


@pytest.mark.parametrize("value", ["!!int 1:30", '!!int ""', "!!int +", "!!int abc"])
def test_an_int_tag_on_no_integer_is_a_config_error(value: str) -> None:
    with pytest.raises(FlowsConfigError, match="not valid YAML: .*is not an integer"):
        FlowsConfig.parse(f"flows: [{{name: a, match: {{attributes: {{q: {value}}}}}}}]\n")


def test_a_blank_match_value_is_an_error_not_any() -> None:
    """`service:` left blank beside a route took every service's matching roots."""
    for key in ("service", "route", "operation"):
        text = f"flows:\n  - name: a\n    match:\n      {key}:\n      route: '/*'\n"
        if key == "route":
            text = "flows:\n  - name: a\n    match:\n      route:\n      service: gw\n"
        with pytest.raises(FlowsConfigError) as caught:
            FlowsConfig.parse(text, "f.yaml")
        assert str(caught.value) == (
            f"f.yaml: flows[0].match.{key}: is empty (leave the key out to match any {key})"
        )


def test_a_route_or_name_written_as_shown_matches_though_it_looks_like_a_glob() -> None:
    """`[id]` (Next.js routes) is a glob's set of characters: the rule matched nothing."""
    config = FlowsConfig.parse(
        "flows:\n"
        "  - {name: by route, match: {route: '/items/[id]'}}\n"
        "  - {name: by name, match: {operation: 'GET /users/[id]'}}\n"
    )
    by_route, by_name = config.flows
    assert config.match(RootFacts("next", "GET /items/[id]", "/items/[id]")) is by_route
    assert config.match(RootFacts("next", "GET /items/i", "/items/i")) is by_route  # still a glob
    assert config.match(RootFacts("next", "GET /users/[id]", "/users/[id]")) is by_name


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ("{true: x}", "the name True is not a string (quote it)"),
        ("{null: x}", "the name None is not a string (quote it)"),
        ("{1.0: x}", "the name 1.0 is not a string (quote it)"),
        ("{x: !!binary aGVsbG8=}", "attributes.x: must be a single value"),
        ("{x: !!set {a}}", "attributes.x: must be a single value"),
    ],
)
def test_attribute_names_and_values_nothing_stores_are_errors(
    attributes: str, message: str
) -> None:
    """They were turned into Python's text ('True', "b'hello'"), which no span holds."""
    text = f"flows:\n  - name: a\n    match:\n      attributes: {attributes}\n"
    with pytest.raises(FlowsConfigError, match=re.escape(message)):
        FlowsConfig.parse(text, "f.yaml")


def test_yaml_errors_name_the_file_at_their_line() -> None:
    with pytest.raises(FlowsConfigError) as caught:
        FlowsConfig.parse("flows:\n - name: a\n  match: x", "my/flows.yaml")
    assert '"<unicode string>"' not in str(caught.value)
    assert 'in "my/flows.yaml", line 3, column 3' in str(caught.value)


def test_by_id_finds_the_first_rule_of_an_id_among_many() -> None:
    rules = "".join(f"  - {{name: r{i}, match: {{service: s{i}}}}}\n" for i in range(500))
    config = FlowsConfig.parse("flows:\n" + rules)
    assert config.by_id("r499") is config.flows[499]
    assert config.by_id("r500") is None
