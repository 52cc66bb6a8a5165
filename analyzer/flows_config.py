"""``flows.yaml``: names for business flows and looser ways to match their root spans.

A flow is normally every trace whose root span has the same (service, operation).
A flows file names flows and matches them by root service, a route pattern and
root attribute values; the first entry that matches a trace's root wins, and
roots no entry matches stay in their automatically named flow::

    flows:
      - name: Order Placement          # required
        id: order-placement            # optional; default: the slug of the name
        match:                         # at least one condition; all must hold
          service: client-gateway      # the root span's service, exactly
          route: "/orders*"            # glob on the root's route (see below)
          operation: "POST *"          # glob on the root span's name
          attributes:                  # the root span's (or its resource's) attribute equals
            order.type: market

The root's route is the first present of its ``http.route``, ``url.path`` and
``http.target`` attributes, else its span name. Errors from ``load``/``validate``
name the key, e.g. ``flows.yaml: flows[1].match.route: must be a string``.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from flowscope.collector.attributes import format_double


class _Loader(yaml.SafeLoader):
    """YAML as 1.2 reads plain values (its core schema), where PyYAML follows 1.1:
    there ``2.5e3`` and ``1e3`` are text (a rule ``amount: 2.5e3`` compared "2.5e3"
    with the stored "2500"), ``017`` is octal 15, ``1:30`` is 90, ``on``/``no`` are
    booleans and ``1_000`` is 1000. Quoted, values stay text. A key given twice in one
    mapping is an error, not the last one silently: two pasted ``flows:`` lists lost
    the first."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults`: its keys may be overridden here
                key = self.construct_object(key_node, deep=deep)
                try:
                    repeated = key in seen
                except TypeError:  # unhashable: the base class says so
                    break
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {key!r} twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: Any) -> int:
        text = str(self.construct_scalar(node))
        sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
        try:
            if digits[:2] in ("0o", "0x"):
                return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
            return sign * int(digits, 10)  # 017 is 17
        except ValueError:  # `!!int 1:30`, `!!int ""`: a tag on what 1.2 reads as no int
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not an integer (YAML 1.2)", node.start_mark
            ) from None


# YAML 1.2's core schema, in place of PyYAML's 1.1 resolvers (merge keys stay).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:merge"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _first in (
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
):
    _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), _first)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)

_FLOW_KEYS = {"name", "id", "match"}
_MATCH_KEYS = {"service", "route", "operation", "attributes"}
_SLUG = re.compile(r"[^a-z0-9]+")
# A root named by a whole SQL statement or a URL with its query would otherwise make an
# id of kilobytes in every link and URL; the hash that follows a cut slug keeps it unique.
MAX_SLUG = 64


class FlowsConfigError(ValueError):
    """A flows file that cannot be used; the message names the file and the key."""


def slugify(text: str) -> str:
    """Lower-case words joined by '-': ``"Order Placement"`` -> ``order-placement``.

    What automatic flow ids are made of, unchanged since the first release so that
    those ids stay stable: letters outside ASCII are dropped (``name_slug`` folds them).
    """
    return _SLUG.sub("-", text.lower()).strip("-") or "flow"


def hashed_slug(slug: str, named: bytes) -> str:
    """``slug`` and 6 hex digits of a hash of ``named``; a slug over MAX_SLUG characters
    cut there (without a trailing '-') with 12, as the hash alone tells such ids apart:
    24 bits met a collision within 6,118 statements of one shape, 48 bits do within
    about 16 million."""
    cut = len(slug) > MAX_SLUG
    digest = hashlib.blake2b(named, digest_size=6 if cut else 3).hexdigest()
    return f"{slug[:MAX_SLUG].rstrip('-') if cut else slug}-{digest}"


def name_slug(name: str) -> str:
    """A rule's default id: its name as a slug with accents folded (``"Über uns"`` ->
    ``uber-uns``, ``ß`` -> ``ss``), plus 6 hex digits of a hash of the name when letters
    or digits had no ASCII form: ``"注文"`` -> ``flow-…``, and ``"Order 注文"`` and
    ``"Order 取消"`` differ (both were ``order``, or ``flow``). A slug over MAX_SLUG
    characters is cut and gets 12 hex digits of that hash, the only part that tells
    such ids apart."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    slug = slugify(decomposed.encode("ascii", "ignore").decode())
    if len(slug) > MAX_SLUG or any(char.isalnum() and not char.isascii() for char in decomposed):
        return hashed_slug(slug, name.encode())
    return slug


@dataclass(frozen=True)
class RootFacts:
    """What a flow rule may look at: the root span of a trace."""

    service: str
    operation: str
    route: str
    attributes: Mapping[str, str] = field(default_factory=dict)  # span attributes over resource


@dataclass(frozen=True)
class FlowRule:
    name: str
    id: str
    service: str | None = None
    route: str | None = None
    operation: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def root(self) -> tuple[str, str]:
        """The root (service, operation) the rule names, for a flow with no traces to
        show one: an operation glob (``POST *``) is a pattern, not an operation, so ''."""
        operation = self.operation or ""
        return self.service or "", "" if any(c in operation for c in "*?[") else operation

    def matches(self, root: RootFacts) -> bool:
        # Every root of a window is tried against the rules until one matches (20,000
        # roots and 500 rules: 10 million tries), so no call that can be saved.
        if self.service is not None and root.service != self.service:
            return False
        # A pattern matches as a glob or as the text itself: a route written as it is
        # shown (`/items/[id]`, as Next.js names them) matched nothing, `[id]` being a
        # glob's set of characters.
        operation, route = self._globs
        if operation is not None and root.operation != self.operation:
            if operation(root.operation) is None:
                return False
        if route is not None and root.route != self.route and route(root.route) is None:
            return False
        attributes = root.attributes
        for key, value in self.attributes:
            if attributes.get(key) != value:
                return False
        return True

    @cached_property
    def _globs(self) -> tuple[Glob | None, Glob | None]:
        return _glob(self.operation), _glob(self.route)


Glob = Callable[[str], Any]  # a compiled pattern's match: None when it does not match


def _glob(pattern: str | None) -> Glob | None:
    return None if pattern is None else re.compile(fnmatch.translate(pattern)).match


@dataclass(frozen=True)
class FlowsConfig:
    flows: tuple[FlowRule, ...] = ()
    source: str = "flows.yaml"

    @cached_property
    def attribute_keys(self) -> tuple[str, ...]:
        """Every attribute key some rule looks at (the analyzer fetches only these).
        Asked for each root: built each time, 1.3 s of 20,000 roots with 500 rules."""
        return tuple(sorted({key for rule in self.flows for key, _ in rule.attributes}))

    def match(self, root: RootFacts) -> FlowRule | None:
        for rule in self.flows:
            if rule.matches(root):
                return rule
        return None

    def by_id(self, flow_id: str) -> FlowRule | None:
        return self._ids.get(flow_id)

    @cached_property
    def _ids(self) -> dict[str, FlowRule]:
        # Asked once per root of a window: a scan of 500 rules for each of 20,000
        # roots took seconds. The first rule of an id, as the scan found it.
        ids: dict[str, FlowRule] = {}
        for rule in self.flows:
            ids.setdefault(rule.id, rule)
        return ids

    def validate(self) -> None:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.flows):
            where = f"{self.source}: flows[{index}]"
            if not rule.name.strip():
                raise FlowsConfigError(f"{where}.name: must not be empty")
            if rule.id != slugify(rule.id):
                raise FlowsConfigError(
                    f"{where}.id: {rule.id!r} is not a slug (lower-case letters, digits and '-')"
                )
            if rule.id in seen:
                raise FlowsConfigError(
                    f"{where}.id: {rule.id!r} is already used by flows[{seen[rule.id]}] "
                    "(without an id, a flow's id is its name as a slug: give one of them an id)"
                )
            seen[rule.id] = index
            if (
                rule.service is None
                and rule.route is None
                and rule.operation is None
                and not rule.attributes
            ):
                raise FlowsConfigError(f"{where}.match: give at least one condition")

    @classmethod
    def load(cls, path: str | Path) -> FlowsConfig:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FlowsConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        return cls.parse(_text(data, path), str(path))

    @classmethod
    def parse(cls, text: str, source: str = "flows.yaml") -> FlowsConfig:
        stream = io.StringIO(text)
        stream.name = source  # errors named the file "<unicode string>"
        try:
            data = yaml.load(stream, Loader=_Loader)  # a SafeLoader with 1.2 numbers
        except yaml.YAMLError as exc:
            raise FlowsConfigError(f"{source}: not valid YAML: {exc}") from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise FlowsConfigError(f"{source}: must be a mapping with a 'flows' list")
        unknown = sorted(set(data) - {"flows"})
        if unknown:
            raise FlowsConfigError(f"{source}: {unknown[0]}: unknown key (expected 'flows')")
        entries = data.get("flows")
        if entries is None:  # `flows:` with nothing under it: no rules yet
            entries = []
        if not isinstance(entries, list):  # before, `flows: {}`, `0` or `""` meant none
            raise FlowsConfigError(f"{source}: flows: must be a list")
        rules = tuple(_rule(entry, f"{source}: flows[{i}]") for i, entry in enumerate(entries))
        config = cls(rules, source)
        config.validate()
        return config


def _text(data: bytes, path: Path) -> str:
    """A YAML file's text: UTF-8, or UTF-16/32 with their byte-order mark (YAML says a
    reader takes them). A file in another encoding (Latin-1, as editors save it) made
    a UnicodeDecodeError traceback."""
    marks = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    encoding = next((name for mark, name in marks if data.startswith(mark)), "utf-8-sig")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FlowsConfigError(
            f"{path}: not {encoding.removesuffix('-sig').upper()} text (byte "
            f"{data[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from exc


def _rule(entry: Any, where: str) -> FlowRule:
    if not isinstance(entry, dict):
        raise FlowsConfigError(f"{where}: must be a mapping with name and match")
    unknown = sorted(set(entry) - _FLOW_KEYS)
    if unknown:
        raise FlowsConfigError(
            f"{where}.{unknown[0]}: unknown key (expected one of {sorted(_FLOW_KEYS)})"
        )
    name = entry.get("name")
    if not isinstance(name, str):
        raise FlowsConfigError(f"{where}.name: required, a string")
    flow_id = entry.get("id", name_slug(name))
    if not isinstance(flow_id, str):
        raise FlowsConfigError(f"{where}.id: must be a string")
    match = entry.get("match")
    if not isinstance(match, dict):
        raise FlowsConfigError(f"{where}.match: required, a mapping")
    unknown = sorted(set(match) - _MATCH_KEYS)
    if unknown:
        raise FlowsConfigError(
            f"{where}.match.{unknown[0]}: unknown key (expected one of {sorted(_MATCH_KEYS)})"
        )
    values: dict[str, str | None] = {}
    for key in ("service", "route", "operation"):
        value = match.get(key)
        if key in match and value is None:  # `service:` left blank took every service
            raise FlowsConfigError(
                f"{where}.match.{key}: is empty (leave the key out to match any {key})"
            )
        if value is not None and not isinstance(value, str):
            raise FlowsConfigError(f"{where}.match.{key}: must be a string")
        values[key] = value
    attributes = match.get("attributes")
    if attributes is None:  # only nothing is no conditions: `[]` or `""` took every root
        attributes = {}
    if not isinstance(attributes, dict):
        raise FlowsConfigError(f"{where}.match.attributes: must be a mapping of key: value")
    pairs: list[tuple[str, str]] = []
    for key, value in attributes.items():
        if not isinstance(key, str):  # `true:` was the key "True", which nothing has
            raise FlowsConfigError(
                f"{where}.match.attributes: the name {key!r} is not a string (quote it)"
            )
        if not isinstance(value, (str, bool, int, float)):  # !!binary, !!set: Python text
            raise FlowsConfigError(
                f"{where}.match.attributes.{key}: must be a single value (string, number or bool)"
            )
        # Attribute values are stored stringified like the ClickHouse exporter does:
        # YAML's 1.0 must read as the stored "1", not Python's "1.0".
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = format_double(value)
        else:
            text = str(value)
        pairs.append((str(key), text))
    return FlowRule(
        name=name,
        id=flow_id,
        service=values["service"],
        route=values["route"],
        operation=values["operation"],
        attributes=tuple(pairs),
    )
