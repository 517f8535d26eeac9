"""quick_init: the same objects as attrs' own __init__ makes, for the classes that use it."""

from __future__ import annotations

import inspect

import attrs
import pytest

from kql.language import ast
from kql.language.errors import Span
from kql.language.frozen import quick_init
from kql.planning import compiler, plan, validate


def _both() -> tuple[type, type]:
    """One class definition, once with attrs' __init__ and once with quick_init's."""

    def define() -> type:
        @attrs.frozen(slots=True)
        class Sample:
            first: int
            second: str = "two"
            third: tuple[int, ...] | None = None
            span: Span | None = attrs.field(default=None, eq=False, kw_only=True)

        return Sample

    return define(), quick_init(define())


def test_same_signature_as_attrs() -> None:
    plain, quick = _both()
    assert inspect.signature(quick.__init__).parameters.keys() == inspect.signature(plain.__init__).parameters.keys()
    for name, parameter in inspect.signature(plain.__init__).parameters.items():
        other = inspect.signature(quick.__init__).parameters[name]
        assert (other.kind, other.default) == (parameter.kind, parameter.default)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "x"), {}), ((1, "x", (3,)), {"span": Span(0, 4)}), ((), {"first": 5, "third": ()})],
)
def test_same_object_as_attrs(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    plain, quick = _both()
    made, reference = quick(*args, **kwargs), plain(*args, **kwargs)
    assert attrs.asdict(made, recurse=False) == attrs.asdict(reference, recurse=False)
    assert repr(made).split("(", 1)[1] == repr(reference).split("(", 1)[1]
    assert hash(made) == hash(quick(*args, **kwargs))
    assert attrs.evolve(made, first=9).first == 9


def test_still_frozen() -> None:
    _, quick = _both()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        quick(1).first = 2  # type: ignore[misc]


def test_missing_argument_is_refused_as_by_attrs() -> None:
    plain, quick = _both()
    with pytest.raises(TypeError):
        plain()
    with pytest.raises(TypeError):
        quick()
    with pytest.raises(TypeError):
        quick(1, span=None, other=3)


def _refused(**field: object) -> None:
    @attrs.frozen(slots=True)
    class Odd:
        value: int = attrs.field(**field)  # type: ignore[call-overload]

    with pytest.raises(TypeError, match="more than a stored argument"):
        quick_init(Odd)


def test_refuses_what_it_would_drop() -> None:
    _refused(validator=attrs.validators.instance_of(int))
    _refused(converter=int)
    _refused(factory=list)
    _refused(alias="other")

    @attrs.define(slots=True)
    class Mutable:
        value: int

    with pytest.raises(TypeError, match="not a frozen, slotted"):
        quick_init(Mutable)

    @attrs.frozen(slots=True)
    class Checked:
        value: int

        def __attrs_post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__attrs_post_init__"):
        quick_init(Checked)

    @attrs.frozen(slots=True, cache_hash=True)
    class Cached:
        value: int

    with pytest.raises(TypeError, match="caches its hash"):
        quick_init(Cached)


QUICK = [
    cls
    for module in (ast, plan)
    for cls in vars(module).values()
    if isinstance(cls, type) and attrs.has(cls) and cls.__module__ == module.__name__
] + [Span, compiler.Compiled, validate.Validated]


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__qualname__)
def test_kql_classes_take_their_fields(cls: type) -> None:
    """Every class that uses quick_init takes exactly its attrs fields, as attrs' __init__ would."""
    assert cls.__init__.__code__.co_filename.startswith("<quick_init")
    parameters = list(inspect.signature(cls).parameters.values())
    fields = attrs.fields(cls)
    assert [p.name for p in parameters] == [f.name for f in fields if not f.kw_only] + [
        f.name for f in fields if f.kw_only
    ]
    for p in parameters:
        field = next(f for f in fields if f.name == p.name)
        assert p.kind is (inspect.Parameter.KEYWORD_ONLY if field.kw_only else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        assert p.default is (inspect.Parameter.empty if field.default is attrs.NOTHING else field.default)
