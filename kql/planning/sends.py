"""API conditions and how several of them share one request.

A ``Send`` is one condition the API can run (a registry parameter with its values).
``merge_sends`` combines the sends of one conjunction the way the API would read
them — lists join (`has_tag(5) and has_tag(6)` is `has_all_tag_id=5,6`), bounds keep
the tighter one — and spots contradictions (no customer can match) and conflicts
(a second value for a parameter that holds one). The compiler and the planner both
build their requests with it, so one request means the same thing in both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from kql.language import ast
from kql.planning.plan import Param
from kql.registry import Filter, Registry

if TYPE_CHECKING:
    from decimal import Decimal


# Not frozen, though nothing assigns to one after it is made: a frozen attrs class sets each field
# through object.__setattr__, about twice as dear, and one Send is made per condition planned.
@attrs.define(slots=True, unsafe_hash=True)
class Send:
    """One condition the API can run: a registry parameter with its values."""

    entry: Filter
    values: tuple[str, ...]
    node: ast.Expr


@attrs.define(slots=True)  # as Send
class Merged:
    """Sends combined per parameter: what to send, whether it is a contradiction, and
    the sends whose values one parameter cannot also hold (same parameter, other value)."""

    params: list[tuple[Filter, tuple[str, ...]]]
    nothing: bool
    conflicts: list[Send]

    def encoded(self) -> list[Param]:
        out: list[Param] = []
        for entry, values in self.params:
            if len(values) == 1:  # most parameters: one value, sent as it is
                out.append((entry.api_name, values[0]))
            else:
                out += _encode_values(entry, values)
        return out


def merge_sends(sends: list[Send], reg: Registry) -> Merged:
    """Combine sends of the same parameter; spot contradictions (match nothing)."""
    group_of, family_of, can_contradict = reg.derived(_tables)
    nothing = _contradicts(sends, family_of, can_contradict)
    keys = [group_of[send.entry.param] for send in sends]
    if len(set(keys)) == len(keys) and all(len(send.values) == 1 for send in sends):
        # Each group has one send of one value, which every rule below sends as it is.
        return Merged([(send.entry, send.values) for send in sends], nothing, [])
    return _merged(keys, sends, nothing, reg)


def _merged(keys: list[str], sends: list[Send], nothing: bool, reg: Registry) -> Merged:
    """``merge_sends`` by its rules, group by group (``keys``: each send's group)."""
    groups: dict[str, list[Send]] = {}
    for key, send in zip(keys, sends, strict=True):
        members = groups.get(key)
        if members is None:
            groups[key] = [send]
        else:
            members.append(send)

    merged: list[tuple[Filter, tuple[str, ...]]] = []
    conflicts: list[Send] = []
    for members in groups.values():
        first, first_values = members[0].entry, members[0].values
        rule = first.merge
        if len(members) == 1 and rule != "all":
            # Most parameters are sent once: nothing to merge or tell apart (what the rules below
            # make of one send: its values; the one value of a bound).
            merged.append((first, (first_values[0],) if rule in ("min", "max") else first_values))
            continue
        distinct = (
            [first_values]
            if len(members) == 1
            else _distinct([s.values for s in members], money=first.value == "money")
        )
        if rule == "all":
            values = tuple(dict.fromkeys(v for vs in distinct for v in vs))
            # One has_tag(…) stays has_tag_id; several tags, or has_all_tags(…), become the list parameter.
            single = all(m.entry.merge_into is not None for m in members) and len(values) == 1
            target = first if single else reg.by_param[first.merge_into or first.param]
            merged.append((target, values))
        elif rule in ("min", "max"):
            pick = min if rule == "min" else max
            merged.append((first, (pick((vs[0] for vs in distinct), key=_number),)))
        elif rule == "exclusive_group":
            if len({m.entry.param for m in members}) > 1:
                nothing = True
            merged.append((first, members[0].values))
        elif len(distinct) == 1:
            merged.append((first, distinct[0]))
        elif rule == "exclusive":
            nothing = True
        else:
            merged.append((first, members[0].values))
            kept = {members[0].values}
            for member in members[1:]:
                if member.values not in kept:
                    kept.add(member.values)
                    conflicts.append(member)
    return Merged(merged, nothing, conflicts)


def _number(text: str) -> Decimal:
    from decimal import Decimal  # here: only a query comparing amounts or days pays for importing decimal

    return Decimal(text)


def _tables(reg: Registry) -> tuple[dict[str, str], dict[str, str], frozenset[str]]:
    """Per parameter, once per registry: the group its sends merge in, its family, and the
    parameters a contradiction needs (see ``_contradicts``)."""
    return (
        {f.param: _group_key(f) for f in reg.filters},
        {f.param: _family(f, reg).param for f in reg.filters},
        frozenset(
            f.param
            for f in reg.filters
            if (f.negated and f.value in ("id", "string", "days")) or (f.value == "money" and f.op)
        ),
    )


def _group_key(entry: Filter) -> str:
    if entry.merge == "exclusive_group":
        return "group:" + entry.name
    return entry.merge_into or entry.param


def _distinct(value_sets: list[tuple[str, ...]], money: bool) -> list[tuple[str, ...]]:
    seen: dict[object, tuple[str, ...]] = {}
    for values in value_sets:
        key = tuple(_number(v) for v in values) if money else values
        seen.setdefault(key, values)
    return list(seen.values())


def _family(entry: Filter, reg: Registry) -> Filter:
    """The positive parameter an entry is about (`has_no_tag_id` → `has_tag_id` → `has_all_tag_id`)."""
    if entry.negated:
        positive = next(
            (f for f in reg.by_name[entry.name] if not f.negated and f.form == entry.form and f.arity == "one"),
            None,
        )
        if positive is None:
            return entry
        entry = positive
    return reg.by_param[entry.merge_into] if entry.merge_into else entry


def _contradicts(sends: list[Send], family_of: dict[str, str], can_contradict: frozenset[str]) -> bool:
    """True when no customer can match all sends (e.g. `has_tag(5) and not has_tag(5)`)."""
    # Every contradiction below needs a negated id, text or days condition, or two amounts: of the
    # rest, only the sends of those negations' families can take part.
    triggers = [send for send in sends if send.entry.param in can_contradict]
    if not triggers:
        return False
    families = {family_of[send.entry.param] for send in triggers if send.entry.negated}
    if not families and len(triggers) < 2:
        return False  # one amount alone
    relevant = [send for send in sends if family_of[send.entry.param] in families]
    relevant += [send for send in triggers if send.entry.value == "money"]
    return _contradiction_in(relevant, family_of)


def _contradiction_in(sends: list[Send], family_of: dict[str, str]) -> bool:
    """``_contradicts``, reading every send."""
    positive: dict[str, set[str]] = {}
    negative: dict[str, set[str]] = {}
    days_within: dict[str, int] = {}
    days_beyond: dict[str, int] = {}
    money: dict[str, list[Decimal]] = {"=": [], ">": [], "<": []}
    for send in sends:
        entry = send.entry
        kind = entry.value
        if kind == "id" or kind == "string":
            family = family_of[entry.param]
            side = negative if entry.negated else positive
            seen = side.get(family)
            if seen is None:
                side[family] = set(send.values)
            else:
                seen.update(send.values)
        elif kind == "days":
            family = family_of[entry.param]
            days = int(send.values[0])
            if entry.negated:
                days_beyond[family] = max(days, days_beyond.get(family, 0))
            else:
                days_within[family] = min(days, days_within.get(family, days))
        elif kind == "money" and entry.op:
            money[entry.op].append(_number(send.values[0]))
    if negative and any(not positive.get(f, set()).isdisjoint(values) for f, values in negative.items()):
        return True
    # Active in the last 7 days but inactive for the last 30: impossible.
    if days_beyond and any(days_within[f] <= beyond for f, beyond in days_beyond.items() if f in days_within):
        return True
    low = max(money[">"], default=None)
    high = min(money["<"], default=None)
    if low is not None and high is not None and high <= low:
        return True
    return any((low is not None and exact <= low) or (high is not None and exact >= high) for exact in money["="])


def _encode_values(entry: Filter, values: tuple[str, ...]) -> list[Param]:
    name = entry.api_name
    if len(values) == 1 or entry.multi == "comma":
        return [(name, ",".join(values))]
    if entry.multi == "brackets":
        return [(f"{name}[]", v) for v in values]
    return [(name, v) for v in values]
