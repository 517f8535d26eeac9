"""A quicker ``__init__`` for the frozen, slotted attrs classes that every query builds many of.

attrs' ``__init__`` for a frozen class stores each field through ``object.__setattr__`` (the
class's own ``__setattr__`` refuses): a generic attribute look-up per field. ``quick_init``
gives the class an ``__init__`` that stores each field through its slot's descriptor instead,
which is what ``object.__setattr__`` ends up calling anyway: the same object, about a quarter
cheaper to make (a compile of 8 conditions makes some 50 of them: spans, AST nodes, the plan).
Everything else stays attrs' own: the fields, equality, hashing, repr, ``attrs.evolve``, and
assignment after construction still raises ``FrozenInstanceError``.

Only for classes whose ``__init__`` does nothing but store its arguments: no validators,
converters, factories, aliases, cached hash or ``__attrs_pre_init__``/``__attrs_post_init__``
(refused at import, so a class that gains one cannot silently lose it).
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

_C = TypeVar("_C", bound=type)


def quick_init(cls: _C) -> _C:
    """Replace the attrs-generated ``__init__`` of a frozen, slotted attrs class (see the module)."""
    _check(cls)
    namespace: dict[str, Any] = {}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for i, field in enumerate(attrs.fields(cls)):
        namespace[f"_set_{i}"] = cls.__dict__[field.name].__set__
        parameter = field.name
        if field.default is not attrs.NOTHING:
            namespace[f"_default_{i}"] = field.default
            parameter += f"=_default_{i}"
        (keyword if field.kw_only else positional).append(parameter)
        body.append(f"    _set_{i}(self, {field.name})")
    parameters = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({parameters}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(compile(source, f"<quick_init {cls.__qualname__}>", "exec"), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(getattr(cls.__dict__["__init__"], "__annotations__", {}))
    type.__setattr__(cls, "__init__", init)
    return cls


def _check(cls: type) -> None:
    params = getattr(cls, "__attrs_props__", None)
    frozen = params.is_frozen if params is not None else _frozen(cls)
    if not attrs.has(cls) or not frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"quick_init: {cls.__qualname__} is not a frozen, slotted attrs class")
    if "_attrs_cached_hash" in cls.__dict__["__slots__"]:
        raise TypeError(f"quick_init: {cls.__qualname__} caches its hash, which attrs' __init__ resets")
    for hook in ("__attrs_pre_init__", "__attrs_post_init__", "__attrs_init__"):
        if hasattr(cls, hook):
            raise TypeError(f"quick_init: {cls.__qualname__} has {hook}")
    for field in attrs.fields(cls):
        if (
            field.validator is not None
            or field.converter is not None
            or not field.init
            or field.alias != field.name
            or isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
            or type(cls.__dict__.get(field.name)).__name__ != "member_descriptor"
        ):
            raise TypeError(f"quick_init: {cls.__qualname__}.{field.name} is more than a stored argument")


def _frozen(cls: type) -> bool:
    """Whether attrs refuses assignment (for attrs versions without ``__attrs_props__``)."""
    return getattr(cls.__setattr__, "__name__", "") == "_frozen_setattrs"
