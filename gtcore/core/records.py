"""Records: immutable named tuples, made without the typing module.

Every command is a whole process, and the engine's records (a plugin, a
gate decision, an event) are named tuples.  ``typing.NamedTuple`` costs an
import of ``typing`` and, for each class, an ``eval`` of its ``__new__``
(``collections.namedtuple``; the process's first one also wakes the
compiler): about 4 ms of an idle ``gtui --once``, a tenth of its own time.
A :class:`Record` is the same kind of tuple, built from plain functions:
fields by name, trailing defaults, ``_fields``, ``_field_defaults``,
``_replace``, ``_asdict``, ``_make``, a repr, tuple equality and pickling.
Positional construction is plain tuple work.  Keywords are bound here, in a
loop, for a record's first :data:`SLOW_BINDS` constructions by keyword; after
that (a record built by keyword in a hot loop), or at the first wrong call,
a function with the record's signature is compiled once, so Python binds the
keywords at full speed and words any misuse.  The process's first compile
wakes the compiler, about 1 ms: a command that builds a few records by
keyword (its settings) never pays it.

Type checkers see ``typing.NamedTuple`` itself.  :data:`TYPE_CHECKING` is
defined here for modules that would otherwise import ``typing`` only to ask.

Record or dataclass: a :class:`Record` for data that is made once and then
passed around, compared and kept (a plugin, a bead, a decision, an event);
a dataclass (or a plain class) only for an object that changes as it lives
(a dog's state in its pool, a run in flight, a watch over runs).
"""

from __future__ import annotations

TYPE_CHECKING = False
SLOW_BINDS = 100  # constructions by keyword of one record bound in Python before its binder is compiled

if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    from operator import itemgetter

    try:
        from _collections import _tuplegetter  # what collections.namedtuple uses; a plain property where it is missing
    except ImportError:  # pragma: no cover - CPython has it
        def _tuplegetter(index, doc):
            return property(itemgetter(index), doc=doc)

    class _RecordType(type):
        """Turns ``class X(Record)`` with annotated fields into a tuple subclass (``Record`` itself is only a marker)."""

        def __new__(mcls, name, bases, namespace):
            if not bases:
                return super().__new__(mcls, name, (), namespace)
            return _record_class(name, namespace)

    class Record(metaclass=_RecordType):
        """Base of the engine's records: see the module's docstring."""

    def _record_class(name, namespace):
        fields = tuple(namespace.get("__annotations__", {}))
        defaults = {field: namespace[field] for field in fields if field in namespace}
        if any(field in defaults for field in fields[:len(fields) - len(defaults)]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        body = {key: value for key, value in namespace.items() if key not in defaults}
        body.update(_methods(name, fields, defaults))
        body.update({field: _tuplegetter(index, f"Alias for field number {index}") for index, field in enumerate(fields)})
        body.update(__slots__=(), _fields=fields, _field_defaults=defaults, __match_args__=fields)
        return type(name, (tuple,), body)

    def _methods(name, fields, defaults):
        count = len(fields)
        new_tuple = tuple.__new__

        binder = None  # compiled once this record is built by keyword often: the compiler only wakes where it pays
        slow_calls = 0

        def bind(args, kwargs):
            nonlocal binder, slow_calls
            if binder is None and slow_calls < SLOW_BINDS:
                slow_calls += 1
                values = _bound(fields, defaults, args, kwargs)
                if values is not None:
                    return values
            if binder is None:  # a hot record, or a wrong call: Python binds it, and words the error
                binder = _compile_binder(name, fields, defaults)
            return binder(*args, **kwargs)

        tail = tuple(defaults.values())  # the defaults, in field order: the last len(tail) fields

        def __new__(cls, *args, **kwargs):
            if not kwargs:
                missing = count - len(args)
                if missing == 0:
                    return new_tuple(cls, args)
                if 0 < missing <= len(tail):
                    return new_tuple(cls, args + tail[len(tail) - missing:])
            return new_tuple(cls, bind(args, kwargs))

        def _make(cls, iterable):
            values = new_tuple(cls, iterable)
            if len(values) != count:
                raise TypeError(f"{name}._make() expected {count} values, got {len(values)}")
            return values

        def _replace(self, **changes):
            values = [changes.pop(field, value) for field, value in zip(fields, self, strict=True)]
            if changes:
                raise ValueError(f"{name}._replace() got unexpected field names: {sorted(changes)!r}")
            return new_tuple(type(self), values)

        def _asdict(self):
            return dict(zip(fields, self, strict=True))

        def __repr__(self):
            return f"{type(self).__name__}({', '.join(f'{field}={value!r}' for field, value in zip(fields, self, strict=True))})"

        def __getnewargs__(self):
            return tuple(self)

        return {"__new__": __new__, "_make": classmethod(_make), "_replace": _replace, "_asdict": _asdict,
                "__repr__": __repr__, "__getnewargs__": __getnewargs__}

    def _bound(fields, defaults, args, kwargs):
        """A keyword construction's values, bound here; None when the call is wrong (the compiled binder says how)."""
        if len(args) > len(fields):
            return None
        values = list(args)
        used = 0
        for field in fields[len(args):]:
            if field in kwargs:
                values.append(kwargs[field])
                used += 1
            elif field in defaults:
                values.append(defaults[field])
            else:
                return None
        return values if used == len(kwargs) else None

    def _compile_binder(name, fields, defaults):
        """A function with the record's own signature returning its values: Python binds keywords and words the errors.

        Field names are identifiers (they were annotations); the defaults are
        passed by reference, never rendered into the source.
        """
        required = [field for field in fields if field not in defaults]
        optional = [f"{field}=_defaults[{field!r}]" for field in fields if field in defaults]
        source = f"def {name}({', '.join(required + optional)}):\n    return ({''.join(f'{field}, ' for field in fields)})\n"
        namespace = {"_defaults": defaults}
        exec(compile(source, f"<record {name}>", "exec"), namespace)
        return namespace[name]
