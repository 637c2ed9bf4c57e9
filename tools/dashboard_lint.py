"""A dashboard lint of our own, written against the rules of grafana/dashboard-linter.

The upstream linter is a Go binary that cannot be installed here, so this module re-implements the
rules that matter for the stack's dashboards (rule names kept where upstream has the same rule, so
a finding reads the same as upstream's), plus the layout checks upstream leaves out:

  template-datasource-rule          a `datasource` variable of type datasource (query prometheus)
  template-on-time-change-reload    query variables refresh on time range change (refresh = 2)
  template-label-promql-rule        query variables use label_values()/label_names()/metrics()/query_result()
  panel-datasource-rule             every panel and target uses the `$datasource` variable
  panel-title-description-rule      every panel has a title and a description (rows: a title)
  panel-units-rule                  every data panel has a known Grafana unit
  panel-no-targets-rule             every data panel has a query
  target-promql-rule                every query scans as PromQL (full validity: promtool, in the tests)
  target-rate-interval-rule         rate()/irate()/increase() ranges are `$__rate_interval`
  target-counter-agg-rule           `*_total` counters only appear inside rate()/irate()/increase()
  target-env-matcher-rule           every `llm:*` selector filters env by the `$env` variable
  target-variables-defined-rule     every `$var` a query uses is a dashboard or Grafana variable
  dashboard-uid-rule                a fixed, valid uid and no `id`/`version` (they churn in state)
  panel-id-unique-rule              panel ids are unique
  panel-gridpos-rule                every panel has a gridPos inside the 24 columns, none overlap

`lint(dashboard)` returns the findings; an empty list means clean. Full PromQL validity needs a
real parser, so tests/test_dashboards.py also runs every query through promtool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

# --- a small PromQL scanner --------------------------------------------------------------------
# Enough of PromQL's lexical structure to find every vector selector, its label matchers, its range
# and the function call that encloses it. It does not validate; promtool does that.

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>(?:\d+(?:ms|[smhdwy]))+|0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<var>\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}@])
    """,
    re.X,
)

# Words that are never metric names. The ones that take a label list in parentheses are separate.
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "atan2", "inf", "nan"}) | _LABEL_LIST_KEYWORDS
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
RATE_INTERVAL = "$__rate_interval"
# Variables Grafana itself defines (https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/#global-variables).
GRAFANA_GLOBAL_VARIABLES = frozenset(
    {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__dashboard", "__from", "__to", "__org", "__user", "__name"}
)


@dataclass(frozen=True)
class Selector:
    """A vector selector: `name{matchers}[range]` (name None for `{__name__=~"..."}`)."""

    name: Optional[str]
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, unquoted value)
    range: Optional[str]  # the text between [ and ], or None for an instant vector
    call: Optional[str]  # the function or aggregation whose parentheses directly enclose it


@dataclass
class _Token:
    kind: str
    text: str


def _tokens(expr: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if not m:
            raise ValueError(f"cannot scan PromQL at {expr[pos:pos + 20]!r} in {expr!r}")
        if m.lastgroup != "ws":
            out.append(_Token(m.lastgroup, m.group()))
        pos = m.end()
    return out


def _unquote(text: str) -> str:
    return text[1:-1]


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in `expr`, in order."""
    toks = _tokens(expr)
    found: list[Selector] = []
    # One entry per open parenthesis: the call it belongs to, "labels" for a by/on/... label list,
    # or None for plain grouping.
    parens: list[Optional[str]] = []
    pending_call: Optional[str] = None  # an aggregation waiting for its `(` after `by (...)`
    i = 0

    def enclosing_call() -> Optional[str]:
        return parens[-1] if parens and parens[-1] != "labels" else None

    def read_selector(name: Optional[str], j: int) -> int:
        matchers: list[tuple[str, str, str]] = []
        if j < len(toks) and toks[j].text == "{":
            j += 1
            while j < len(toks) and toks[j].text != "}":
                if toks[j].kind == "ident" and j + 2 < len(toks) and toks[j + 2].kind == "str":
                    matchers.append((toks[j].text, toks[j + 1].text, _unquote(toks[j + 2].text)))
                    j += 3
                else:
                    j += 1
            j += 1  # the closing brace
        rng = None
        if j < len(toks) and toks[j].kind == "range":
            rng = toks[j].text[1:-1].strip()
            j += 1
        found.append(Selector(name, tuple(matchers), rng, enclosing_call()))
        return j

    while i < len(toks):
        tok = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if tok.text == "(":
            if i > 0 and toks[i - 1].kind == "ident" and toks[i - 1].text in _LABEL_LIST_KEYWORDS:
                parens.append("labels")
            elif i > 0 and toks[i - 1].kind == "ident" and toks[i - 1].text not in _KEYWORDS:
                parens.append(toks[i - 1].text)
            elif pending_call is not None and i > 0 and toks[i - 1].text == ")":
                parens.append(pending_call)
                pending_call = None
            else:
                parens.append(None)
            i += 1
        elif tok.text == ")":
            if parens:
                parens.pop()
            i += 1
        elif parens and parens[-1] == "labels":
            i += 1  # label names inside by (...), on (...), group_left (...)
        elif tok.kind == "ident":
            word = tok.text
            if nxt is not None and nxt.text == "(":
                i += 1  # a call; the `(` branch records it
            elif word in _AGGREGATIONS and nxt is not None and nxt.text in ("by", "without"):
                pending_call = word
                i += 1
            elif word.lower() in _KEYWORDS:
                i += 1
            else:
                i = read_selector(word, i + 1)
        elif tok.text == "{":
            i = read_selector(None, i)
        else:
            i += 1
    return found


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names `expr` reads, including `__name__="..."` matchers."""
    names = set()
    for sel in selectors(expr):
        if sel.name:
            names.add(sel.name)
        for label, op, value in sel.matchers:
            if label == "__name__" and op == "=":
                names.add(value)
    return names


def variables(text: str) -> set[str]:
    """The Grafana variables (`$name` or `${name}`) referenced in `text`."""
    return {m.group(1) or m.group(2) for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", text)}


# --- the lint ---------------------------------------------------------------------------------

RULES = (
    "template-datasource-rule",
    "template-on-time-change-reload",
    "template-label-promql-rule",
    "panel-datasource-rule",
    "panel-title-description-rule",
    "panel-units-rule",
    "panel-no-targets-rule",
    "target-promql-rule",
    "target-rate-interval-rule",
    "target-counter-agg-rule",
    "target-env-matcher-rule",
    "target-variables-defined-rule",
    "dashboard-uid-rule",
    "panel-id-unique-rule",
    "panel-gridpos-rule",
)

@dataclass(frozen=True)
class Finding:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


# Grafana unit ids, from grafana/grafana packages/grafana-data/src/valueFormats/categories.ts (the
# list dashboard-linter's panel-units-rule enumerates), limited to the families a dashboard here
# could use.
VALID_UNITS = frozenset(
    {
        "none", "string", "short", "percent", "percentunit", "sci", "locale",
        "bytes", "decbytes", "bits", "decbits", "kbytes", "mbytes", "gbytes",
        "Bps", "binBps", "bps", "pps",
        "hertz", "ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations", "dthms", "dtdhms",
        "cps", "ops", "reqps", "rps", "wps", "iops", "cpm", "opm", "rpm", "wpm",
        "watt", "kwatt", "celsius", "fahrenheit", "kelvin",
        "bool", "bool_yes_no", "bool_on_off",
        "dateTimeAsIso", "dateTimeFromNow",
    }
)
# Panel types that show query data and so need a datasource, targets, units and a description.
DATA_PANEL_TYPES = frozenset({"timeseries", "stat", "gauge", "bargauge", "table", "graph", "singlestat"})
_UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_TEMPLATE_QUERY_RE = re.compile(r"^\s*(label_values|label_names|metrics|query_result)\((.*)\)\s*$", re.S)
GRID_COLUMNS = 24


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including the ones nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        for nested in panel.get("panels", []) or []:
            yield nested


def _panel_name(panel: dict) -> str:
    return f"panel {panel.get('id')!r} {panel.get('title', '')!r}"


def _template_query(var: dict) -> str:
    query = var.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else str(query)


@dataclass
class _Lint:
    dashboard: dict
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: str, where: str, message: str) -> None:
        self.findings.append(Finding(rule, where, message))

    @property
    def templates(self) -> list[dict]:
        return list(self.dashboard.get("templating", {}).get("list", []))

    def dashboard_rules(self) -> None:
        d = self.dashboard
        uid = d.get("uid")
        if not isinstance(uid, str) or not _UID_RE.match(uid):
            self.add("dashboard-uid-rule", "dashboard", f"needs a fixed uid of 1-40 letters, digits, - or _; has {uid!r}")
        for key in ("id", "version"):
            if key in d:
                self.add("dashboard-uid-rule", "dashboard", f"must not carry {key!r}: Grafana assigns it and the provider would see a diff on every run")
        if not d.get("title"):
            self.add("panel-title-description-rule", "dashboard", "has no title")

        datasources = [t for t in self.templates if t.get("type") == "datasource"]
        if not datasources:
            self.add("template-datasource-rule", "dashboard", "has no templated data source variable")
        for t in datasources:
            if t.get("name") != "datasource":
                self.add("template-datasource-rule", f"variable {t.get('name')!r}", "the data source variable should be named 'datasource'")
            if t.get("label") != "Data source":
                self.add("template-datasource-rule", f"variable {t.get('name')!r}", "the data source variable should be labelled 'Data source'")
            if t.get("query") != "prometheus":
                self.add("template-datasource-rule", f"variable {t.get('name')!r}", f"should select prometheus data sources, selects {t.get('query')!r}")

        for t in self.templates:
            if t.get("type") != "query":
                continue
            where = f"variable {t.get('name')!r}"
            if t.get("refresh") != 2:
                self.add("template-on-time-change-reload", where, f"should refresh on time range change (2), is {t.get('refresh')!r}")
            if not _TEMPLATE_QUERY_RE.match(_template_query(t)):
                self.add("template-label-promql-rule", where, f"query {_template_query(t)!r} is not label_values(), label_names(), metrics() or query_result()")
            if t.get("datasource", {}).get("uid") not in ("$datasource", "${datasource}"):
                self.add("panel-datasource-rule", where, "does not query the templated data source")

    def panel_rules(self) -> None:
        seen_ids: dict = {}
        boxes: list[tuple[dict, tuple[int, int, int, int]]] = []
        defined = {t.get("name") for t in self.templates} | GRAFANA_GLOBAL_VARIABLES
        for panel in iter_panels(self.dashboard):
            where = _panel_name(panel)
            ptype = panel.get("type")
            pid = panel.get("id")
            if not isinstance(pid, int):
                self.add("panel-id-unique-rule", where, "has no integer id")
            elif pid in seen_ids:
                self.add("panel-id-unique-rule", where, f"reuses the id of {seen_ids[pid]}")
            else:
                seen_ids[pid] = where

            grid = panel.get("gridPos") or {}
            if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
                self.add("panel-gridpos-rule", where, f"has no complete gridPos: {grid!r}")
            else:
                x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
                if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > GRID_COLUMNS:
                    self.add("panel-gridpos-rule", where, f"gridPos {grid!r} is outside the {GRID_COLUMNS}-column grid")
                for other, (ox, oy, ow, oh) in boxes:
                    if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                        self.add("panel-gridpos-rule", where, f"overlaps {_panel_name(other)}")
                boxes.append((panel, (x, y, w, h)))

            if not panel.get("title"):
                self.add("panel-title-description-rule", where, "has no title")
            if ptype not in DATA_PANEL_TYPES:
                continue
            if not panel.get("description"):
                self.add("panel-title-description-rule", where, "has no description")
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
            if unit not in VALID_UNITS:
                self.add("panel-units-rule", where, f"has no or an unknown unit: {unit!r}")
            if panel.get("datasource", {}).get("uid") not in ("$datasource", "${datasource}"):
                self.add("panel-datasource-rule", where, f"does not use the templated data source, uses {panel.get('datasource')!r}")
            targets = panel.get("targets") or []
            if not targets:
                self.add("panel-no-targets-rule", where, "has no targets")
            for target in targets:
                self.target_rules(panel, target, defined)

    def target_rules(self, panel: dict, target: dict, defined: set) -> None:
        where = f"{_panel_name(panel)} target {target.get('refId')!r}"
        expr = target.get("expr", "")
        if target.get("datasource", {}).get("uid") not in ("$datasource", "${datasource}"):
            self.add("panel-datasource-rule", where, "does not use the templated data source")
        for var in sorted(variables(expr) - defined):
            self.add("target-variables-defined-rule", where, f"uses ${var}, which the dashboard does not define")
        try:
            found = selectors(expr)
        except ValueError as err:
            self.add("target-promql-rule", where, str(err))
            return
        for sel in found:
            if sel.range is not None and sel.call in RATE_FUNCTIONS and sel.range != RATE_INTERVAL:
                self.add("target-rate-interval-rule", where, f"{sel.call}() over [{sel.range}] should use [{RATE_INTERVAL}]")
            if sel.name and sel.name.endswith("_total") and not (sel.range is not None and sel.call in RATE_FUNCTIONS):
                self.add("target-counter-agg-rule", where, f"counter {sel.name} is not wrapped in rate(), irate() or increase()")
            if sel.name and sel.name.startswith("llm:") and ("env", "=~", "$env") not in sel.matchers:
                self.add("target-env-matcher-rule", where, f'{sel.name} does not filter env=~"$env"')


def lint(dashboard: dict) -> list[Finding]:
    """Every finding for `dashboard` (a parsed dashboard JSON model); empty when clean."""
    run = _Lint(dashboard)
    run.dashboard_rules()
    run.panel_rules()
    return run.findings
