"""Records (gtcore.core.records) behave as the named tuples they stand in for, however they are built."""

from __future__ import annotations

import collections
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtcore.core.records import Record


class Sample(Record):
    name: str
    size: int = 0
    tags: tuple = ()


Twin = collections.namedtuple("Twin", ["name", "size", "tags"], defaults=[0, ()])
values = st.one_of(st.integers(), st.text(max_size=5), st.none())


@given(st.lists(values, min_size=1, max_size=3), st.data())
def test_positional_and_keyword_construction_match_namedtuple(args, data):
    split = data.draw(st.integers(min_value=1, max_value=len(args)))
    kwargs = dict(zip(Sample._fields[split:], args[split:], strict=False))
    mine, theirs = Sample(*args[:split], **kwargs), Twin(*args[:split], **kwargs)
    assert tuple(mine) == tuple(theirs)
    assert mine == Sample(*args) and mine._asdict() == theirs._asdict()
    assert pickle.loads(pickle.dumps(mine)) == mine


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Sample(), "missing 1 required positional argument: 'name'"),
    (lambda: Sample("a", name="b"), "multiple values for argument 'name'"),
    (lambda: Sample("a", colour=1), "unexpected keyword argument 'colour'"),
    (lambda: Sample(1, 2, 3, 4), "takes from 1 to 3 positional arguments but 4 were given"),
])
def test_misuse_is_worded_like_python(build, message):
    with pytest.raises(TypeError, match=message) as caught:
        build()
    assert str(caught.value).startswith("Sample()")


def test_a_default_is_shared_not_rendered():
    marker = object()

    class Holder(Record):
        value: object = marker

    assert Holder().value is marker and Holder(value=1).value == 1


def test_a_record_built_by_keyword_now_and_then_never_wakes_the_compiler() -> None:
    """Keywords are bound in Python for a record's first constructions (a command's settings: the compiler's first wake
    costs about 1 ms of its start-up); a record built by keyword in a hot loop gets its compiled binder, once."""
    import subprocess
    import sys
    from pathlib import Path

    probe = """
import sys
compiled = []
sys.addaudithook(lambda event, args: compiled.append(args[1]) if event == "compile" and str(args[1]).startswith("<record") else None)
from gtcore.core.records import SLOW_BINDS, Record

class Cold(Record):
    name: str
    size: int = 0

class Hot(Record):
    name: str
    size: int = 0

assert [Cold(name="a", size=n) for n in range(3)][-1] == ("a", 2) and Cold("b", size=1) == ("b", 1)
print(len(compiled))
built = [Hot(name="h", size=n) for n in range(SLOW_BINDS + 50)]
assert built[-1] == ("h", SLOW_BINDS + 49) and built[SLOW_BINDS + 1] == ("h", SLOW_BINDS + 1)
print(len(compiled))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.split() == ["0", "1"]
