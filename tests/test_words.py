"""What gtui says when something is wrong: plain words, one line, never a guess dressed as an answer.

* Ids are matched whole: ``run-1\\n`` is not ``run-1``, a number no ledger can
  hold or that is not stored is "no such run" (or escalation), on one line,
  exit 2, and never a crash report.
* A read-only file system is said as one, not as "check permissions".
* An SMTP server's refusal reaches the operator as the recipient, the code and
  the server's words (no Python tuple, no ``b'...'``).
* A webhook's ``Retry-After`` (seconds or an HTTP date) on 429 and 503 is
  honoured, at most an hour; the recorded next attempt is asserted on an
  injected clock, never by waiting.

Real processes, a real aiosmtpd server, a real HTTP server and a real read-only
bind mount; the parsers behind the ids and ``Retry-After`` also get Hypothesis.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from enginekit import Result, add_plugin, gtui, gtui_env, ledger, make_town
from faultkit import read_only
from hypothesis import example, given, settings
from hypothesis import strategies as st
from servers import SmtpServer, WebhookServer
from test_cli_engine import one_line_error
from test_escalation import HUMAN_EMAIL, HUMAN_SMS, T0, deliveries, reread, service
from test_escalation_cli import cli, contacts, write_settings
from test_properties import fuzz

from gtcore.core.errors import NotFound
from gtcore.escalation.delivery import RETRY_AFTER_CAP, retry_after
from gtcore.escalation.escalations import FIRST_RETRY_SECONDS
from gtcore.model import MAX_ID, NOUNS, PREFIX, format_ref, parse_ref
from gtcore.storage import open_ledger

RUN_LOG = "the log of run-2"  # what run-2 printed: no answer about another id may show it

# -- ids: matched whole, or no such run/escalation -------------------------------------------------------


@pytest.fixture(scope="module")
def town_with_ids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A town with esc-1 (open) and run-2 (of plugin ``p``, its log on disk): the ids a near miss must not reach.

    Every kind of record draws its number from one sequence: there is no run-1 (record 1 is esc-1) and no esc-2.
    """
    town = make_town(tmp_path_factory.mktemp("ids") / "town")
    add_plugin(town, "p", 'type = "manual"', f"echo {RUN_LOG}\n")
    write_settings(town, {"routes": {"low": ["bead"]}})
    assert cli(town, "escalate", "Exists", "--severity", "low", "--json").json()["id"] == "esc-1"
    assert gtui(town, "plugin", "run", "p", "--json").json()["id"] == "run-2"
    assert gtui(town, "plugin", "log", "p", "run-2").out == f"{RUN_LOG}\n"  # the real id does reach it
    return town


def no_such(done: Result, noun: str) -> str:
    """The refusal of an id: exit 2, one line ``gtui: error: no such <noun>: ...``, nothing on stdout."""
    line = one_line_error(done, f"gtui: error: no such {noun}: ")
    assert line.startswith(f"gtui: error: no such {noun}: ") and done.out == "", (line, done.out)
    return line


def no_crash_report(town: Path) -> None:
    crashes = town / ".gtui" / "crash"
    assert not crashes.exists() or list(crashes.iterdir()) == [], list(crashes.iterdir())


BAD_RUN_IDS = ["run-2\n", "run-2 ", " run-2", "run-٢", "run-+2", "run--2", "run-0", "run-1", "run-3", "esc-2", "run-9223372036854775807",
               "run-9223372036854775808", "run-99999999999999999999999"]
"""Near misses of run-2, numbers not stored (record 1 is no run; MAX_ID, MAX_ID + 1, far beyond) and another kind's id."""


@pytest.mark.parametrize("ref", BAD_RUN_IDS, ids=ascii)
def test_a_run_id_is_matched_whole_or_is_no_such_run(town_with_ids: Path, ref: str) -> None:
    """A stripped or Unicode-normalised id would show run-2's log for what the operator did not type; a number past
    SQLite's integers once became an OverflowError and a crash report."""
    done = gtui(town_with_ids, "plugin", "log", "p", ref)
    no_such(done, "run")
    assert RUN_LOG not in done.out + done.err
    no_crash_report(town_with_ids)


def test_a_refused_id_answers_json_with_one_error(town_with_ids: Path) -> None:
    """Programs reading ``--json`` get the same words as the one JSON document on stdout."""
    done = gtui(town_with_ids, "plugin", "log", "p", "run-99999999999999999999999", "--json")
    assert done.code == 2 and list(done.json()) == ["error"]
    assert done.json()["error"].startswith("no such run: ")


ESCALATION_IDS = {
    "show": [" esc-1", "esc--1", "run-1", "esc-9223372036854775808"],
    "ack": ["esc-1\n", "esc-١", "esc-0", "esc-2", "esc-3", "esc-99999999999999999999999"],
    "close": ["esc-1 ", "esc-0", "99999999999999999999999"],
}


@pytest.mark.parametrize(("verb", "ref"), [(verb, ref) for verb, refs in ESCALATION_IDS.items() for ref in refs], ids=ascii)
def test_an_escalation_id_is_matched_whole_or_is_no_such_escalation(town_with_ids: Path, verb: str, ref: str) -> None:
    """``ack`` and ``close`` change what they name: a near miss of esc-1 must refuse, not acknowledge or close esc-1, and say
    it in the words ``show`` uses (the ledgers word a missing escalation their own way)."""
    no_such(gtui(town_with_ids, "escalate", verb, ref, *(("--reason", "near miss") if verb == "close" else ())), "escalation")
    esc_1 = ledger(town_with_ids).get(1, "escalation")
    assert (esc_1.status, esc_1.data.get("close_reason")) == ("open", None)  # a near miss of esc-1 left it alone
    no_crash_report(town_with_ids)


@pytest.mark.parametrize("ref", ["run-0", "run-2\n", "run-99999999999999999999999"], ids=ascii)
def test_a_report_from_a_run_id_not_on_the_ledger_is_one_line(town_with_ids: Path, ref: str) -> None:
    """``gtui report`` takes its run from GT_RUN_ID: a forged or mangled one is refused in one line, and run-2 is untouched."""
    done = cli(town_with_ids, "report", "failure", "forged", env={"GT_RUN_ID": ref, "GTUI_RUN_TOKEN": "forged"})
    one_line_error(done, "gtui: error: ", "run")
    assert [(run.ref, run.result) for run in ledger(town_with_ids).runs("p")] == [("run-2", "success")]
    no_crash_report(town_with_ids)


def test_the_plugin_facing_bd_matches_ids_whole_too(town_with_ids: Path) -> None:
    """``bd show`` inside a run answers as Gas Town's bd does for an id it does not have (exit 1, its own words); a mangled
    id must still not reach run-2."""
    bd = town_with_ids / ".gtui" / "bin" / "bd"
    env = {**gtui_env(), "GT_TOWN_ROOT": str(town_with_ids)}
    shown = subprocess.run([str(bd), "show", "run-2"], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith("run-2: "), shown.stderr
    for ref in ("run-2\n", " run-2", "run-99999999999999999999999"):
        missed = subprocess.run([str(bd), "show", ref], capture_output=True, text=True, env=env, timeout=60)
        assert (missed.returncode, missed.stdout) == (1, ""), (ref, missed)
        assert missed.stderr.startswith("no issues found matching") and "Traceback" not in missed.stderr


def test_the_ledger_answers_any_id_it_cannot_hold_as_no_such_record(tmp_path: Path) -> None:
    """Below 1 or past a 64-bit integer no record can be: said as missing, never an OverflowError from SQLite (what any
    caller passing a number straight to the ledger would otherwise meet)."""
    book = open_ledger(tmp_path / "ledger.db")
    for number in (0, -1, MAX_ID, MAX_ID + 1, 2**64, 10**30):
        with pytest.raises(NotFound, match=r"^no such run: "):
            book.get(number, "wisp")
        with pytest.raises(NotFound, match=r"^no such escalation: "):
            book.get(number, "escalation")


ID_TEXT = st.one_of(
    st.text(max_size=30),
    st.builds("".join, st.tuples(
        st.sampled_from(["", " ", "\t", "\n", "\u00a0", "+", "-", "0"]),
        st.sampled_from(["", *(prefix + "-" for prefix in PREFIX.values()), "RUN-", "run_", "run--"]),
        st.from_regex(r"[0-9]{1,25}", fullmatch=True) | st.text(st.characters(categories=["Nd"]), min_size=1, max_size=25),
        st.sampled_from(["", "\n", " ", "\r", "\x00", "-1", "x", "١", "\u200b"]),
    )),
)
"""Anything, and above all near misses of an id: a stray space or newline, a Unicode digit, a sign, a wrong kind."""


@fuzz(800)
@given(kind=st.sampled_from(sorted(PREFIX)), text=ID_TEXT)
@example(kind="wisp", text="run-1\n")
@example(kind="wisp", text=" run-1")
@example(kind="wisp", text="run-١")
@example(kind="wisp", text="run--1")
@example(kind="escalation", text="esc-99999999999999999999999")
@example(kind="escalation", text="esc-9223372036854775807")
def test_parse_ref_takes_an_id_whole_or_says_no_such_one(kind: str, text: str) -> None:
    """Either the whole text is ``<prefix>-<ASCII digits>`` (or the digits alone) of a number a ledger can hold, and that
    number is the answer; or it is :class:`NotFound` in one line starting ``no such <noun>:``, never another error."""
    whole = re.fullmatch(rf"(?:{re.escape(PREFIX[kind])}-)?([0-9]+)", text)
    try:
        number = parse_ref(text, kind)
    except NotFound as exc:
        said = str(exc)
        assert said.startswith(f"no such {NOUNS[kind]}: ") and "\n" not in said, said
        assert whole is None or int(whole.group(1)) > MAX_ID, text
    else:
        assert whole is not None and number == int(whole.group(1)) <= MAX_ID, (text, number)


@fuzz(300)
@given(kind=st.sampled_from(sorted(PREFIX)), number=st.integers(1, MAX_ID))
def test_every_id_a_ledger_can_hold_reads_back(kind: str, number: int) -> None:
    """The guards must not cost a real id: up to MAX_ID, as written by gtui, as a bare number or an int, it reads back."""
    assert parse_ref(format_ref(kind, number), kind) == parse_ref(str(number), kind) == parse_ref(number, kind) == number


# -- a read-only file system is said as one ----------------------------------------------------------------


WRITES = [("event", "emit", "deploy.done"), ("plugin", "disable", "p"), ("escalate", "Disk trouble", "--severity", "low")]


def test_a_read_only_state_directory_is_said_as_a_read_only_file_system(tmp_path: Path) -> None:
    """SQLite says "readonly database" for a mode it may not write and a mount that is read-only alike; only the second
    is the operator's to remount, and "check permissions" would send them to chmod."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "p", 'type = "manual"')
    assert gtui(town, "event", "emit", "before").code == 0  # the ledger exists: its directory goes read-only under it
    with read_only(town / ".gtui"):
        for args in WRITES:
            line = one_line_error(gtui(town, *args), "gtui: error: ", "read-only file system", str(town / ".gtui"))
            assert "permission" not in line, line
        as_json = gtui(town, *WRITES[0], "--json")
        assert as_json.code == 2 and "read-only file system" in as_json.json()["error"]
    assert set(ledger(town).last_events()) == {"before"}  # nothing was recorded meanwhile
    assert ledger(town).paused() == {}
    no_crash_report(town)


@pytest.mark.parametrize("state", ["empty", "absent"])
def test_a_ledger_that_cannot_even_be_created_on_a_read_only_mount_says_so_too(tmp_path: Path, state: str) -> None:
    """No ledger yet: SQLite cannot make its file (``empty``: the state directory is read-only), or the state directory
    itself cannot be made (``absent``: the whole town is read-only).  Either way, the words say why."""
    town = make_town(tmp_path / "town")
    if state == "empty":
        (town / ".gtui").mkdir()
    with read_only(town / ".gtui" if state == "empty" else town):
        line = one_line_error(gtui(town, "event", "emit", "deploy.done"), "gtui: error: ", str(town / ".gtui"))
        assert "read-only file system" in line.lower() and "permission" not in line, line
    assert not (town / ".gtui" / "ledger.db").exists()


# -- an SMTP server's refusal, in words ----------------------------------------------------------------------


@pytest.fixture
def refusing_smtp() -> Iterator[SmtpServer]:
    """A real SMTP server that refuses every recipient: 550 5.1.1, as a mailbox that does not exist is refused."""
    server = SmtpServer(refuse=("RCPT", "550 5.1.1 no such user here")).start()
    yield server
    server.stop()


def no_python_in(text: str) -> None:
    """No repr leaked into words meant for a person: bytes, a dict or a tuple of code and bytes."""
    for leak in ("b'", 'b"', "{", "(550", "SMTPRecipientsRefused"):
        assert leak not in text, text


def test_an_smtp_refusal_names_the_recipient_the_code_and_the_words(town: Path, refusing_smtp: SmtpServer) -> None:
    """smtplib's refusal is a dict of address to (code, bytes): printed as is, the operator read Python, not the server.
    Every place a failed delivery reaches a person says it in words: the raise, ``escalate show`` and the patrol."""
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(refusing_smtp.port)})
    words = f"SMTP 127.0.0.1:{refusing_smtp.port}: refused {HUMAN_EMAIL}: 550 5.1.1 no such user here"

    raised = cli(town, "escalate", "Mayor unreachable", "--severity", "high")
    assert raised.code == 1  # recorded; the person was not reached
    (line,) = raised.err.splitlines()
    assert line.startswith("gtui: error: esc-1 is recorded, but email:human failed") and words in line, line
    no_python_in(line)
    assert refusing_smtp.messages == []

    shown = gtui(town, "escalate", "show", "esc-1", "--json").json()
    (failed,) = [item for item in shown["deliveries"] if item["channel"] == "email:human"]
    assert (failed["ok"], failed["error"]) == (False, words)
    assert shown["pending"] == ["email:human"]  # retried later, not dropped
    human = gtui(town, "escalate", "show", "esc-1")
    assert human.code == 0 and f"refused {HUMAN_EMAIL}: 550 5.1.1 no such user here" in human.out
    no_python_in(human.out)

    patrol = gtui(town, "--once", "--wait", "--json").json()  # --wait: the patrol's retry settled, said among its problems
    (problem,) = [item for item in patrol["problems"] if "esc-1" in item["reason"]]
    assert problem["field"] == "contacts for email:human" and words in problem["reason"], problem
    no_python_in(problem["reason"])


def test_an_smtp_refusal_of_the_message_itself_is_its_code_and_words(town: Path) -> None:
    """A refusal after DATA (no recipient to name) is the server's code and words, its bytes decoded."""
    server = SmtpServer(refuse=("DATA", "554 5.7.1 message refused as spam")).start()
    try:
        write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(server.port)})
        escalation, _ = service(town).raise_("Spammy subject", "high", now=T0)
        (failed,) = deliveries(escalation, "email:human")
        assert failed["error"] == f"SMTP 127.0.0.1:{server.port}: 554 5.7.1 message refused as spam"
    finally:
        server.stop()


# -- Retry-After: the other end's word on when to try again ---------------------------------------------------


def http_date(seconds_from_now: float) -> str:
    """An HTTP date (IMF-fixdate) that many seconds after the wall clock's now."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)


def sms_to(hook: WebhookServer) -> dict[str, Any]:
    return {"routes": {"high": ["bead", "sms:human"]}, "contacts": {"human_sms": HUMAN_SMS, "sms_webhook": hook.url("/sms")}}


@pytest.mark.parametrize(("status", "header", "wait", "words"), [
    (429, "600", 600.0, "HTTP 429; it asks to be tried again in 10m"),
    (503, "600", 600.0, "HTTP 503; it asks to be tried again in 10m"),
    (429, " 120 ", 120.0, "HTTP 429; it asks to be tried again in 2m"),
    (429, "86400000", RETRY_AFTER_CAP, "HTTP 429; it asks to be tried again in 1h"),
    (503, "99999999999999999999999999999", RETRY_AFTER_CAP, "HTTP 503; it asks to be tried again in 1h"),
    (429, None, FIRST_RETRY_SECONDS, "HTTP 429"),  # no word from the other end: gtui's own backoff
    (429, "soon", FIRST_RETRY_SECONDS, "HTTP 429"),  # not one of the two forms: ignored
    (429, "-600", FIRST_RETRY_SECONDS, "HTTP 429"),
    (500, "600", FIRST_RETRY_SECONDS, "HTTP 500"),  # only 429 and 503 ask for a wait
    (503, "Sun, 0 Jan 3000000000 00:00:00 GMT", FIRST_RETRY_SECONDS, "HTTP 503"),  # a year no datetime holds: ignored, no bug
])
def test_retry_after_decides_the_next_attempt(town: Path, status: int, header: str | None, wait: float, words: str) -> None:
    """A rate-limited webhook hammered every 30 s stays rate-limited; one that asks for ten minutes gets them, and the
    operator reads why the next attempt is that far.  The recorded next attempt is read on an injected clock."""
    hook = WebhookServer(status=status, headers={} if header is None else {"Retry-After": header}).start()
    try:
        write_settings(town, sms_to(hook))
        escalations = service(town)
        escalation, _ = escalations.raise_("Pager", "high", now=T0)
        (failed,) = deliveries(escalation, "sms:human")
        assert failed["error"] == f"SMS webhook answered {words}"
        (pending,) = escalation.bead.data["pending"]
        assert pending["next_at"] == T0 + wait

        assert escalations.deliver_due(T0 + wait - 1) == 0 and len(hook.posts) == 1  # not a second earlier
        assert escalations.deliver_due(T0 + wait) == 1 and len(hook.posts) == 2
        (again,) = reread(town, escalation).bead.data["pending"]
        if header is not None and wait != FIRST_RETRY_SECONDS:
            assert again["next_at"] == T0 + 2 * wait  # asked again: honoured again, not replaced by the backoff
    finally:
        hook.stop()


@pytest.mark.parametrize(("status", "ahead", "low", "high"), [
    (429, 600.0, 595.0, 600.0),  # an HTTP date has whole seconds: up to one less, and the time the answer took
    (503, 600.0, 595.0, 600.0),
    (429, 30 * 86400.0, RETRY_AFTER_CAP, RETRY_AFTER_CAP),  # a month ahead: an hour
    (503, -600.0, 0.0, 0.0),  # a date already past: now
])
def test_retry_after_as_an_http_date_decides_the_next_attempt(town: Path, status: int, ahead: float, low: float,
                                                              high: float) -> None:
    """The date form counts from the wall clock when the answer came (the date is the server's), at most an hour ahead."""
    hook = WebhookServer(status=status, headers={"Retry-After": http_date(ahead)}).start()
    try:
        write_settings(town, sms_to(hook))
        escalations = service(town)
        escalation, _ = escalations.raise_("Pager", "high", now=T0)
        (pending,) = escalation.bead.data["pending"]
        assert low <= pending["next_at"] - T0 <= high, pending["next_at"] - T0
        if low > FIRST_RETRY_SECONDS:
            assert escalations.deliver_due(T0 + low - 1) == 0 and len(hook.posts) == 1
    finally:
        hook.stop()


@fuzz(300)
@given(seconds=st.integers(0, 10**30), pad=st.sampled_from(["", " ", "\t", "  "]), now=st.floats(0, 4e9))
def test_retry_after_seconds_are_taken_at_their_word_up_to_an_hour(seconds: int, pad: str, now: float) -> None:
    """Any count of seconds, however long (past a float's integers too), is its value up to the hour, whatever ``now``."""
    assert retry_after(f"{pad}{seconds}{pad}", now) == min(float(seconds), RETRY_AFTER_CAP)


@pytest.mark.parametrize("header", ["٦٠٠", "６００", "²", "1²", "600s", "6e2", "600.0", "0x258", "+600", ""])
def test_retry_after_seconds_are_ascii_digits_only(header: str) -> None:
    """RFC 9110's delay-seconds is ``1*DIGIT``: other scripts' digits, superscripts (Latin-1, as http.client decodes a header),
    units, exponents and signs are none, and must never raise either."""
    assert retry_after(header, T0) is None


@fuzz(300)
@given(now=st.integers(10**9, 4 * 10**9), ahead=st.integers(-10**9, 10**9))
@example(now=1_800_000_000, ahead=600)
@example(now=1_800_000_000, ahead=3601)
def test_retry_after_dates_count_from_now_never_back_and_at_most_an_hour(now: int, ahead: int) -> None:
    """A date is a wait from ``now``: a past one is no wait (never a negative one), a far one an hour."""
    assert retry_after(formatdate(now + ahead, usegmt=True), now) == min(max(0.0, float(ahead)), RETRY_AFTER_CAP)


@fuzz(400)
@given(header=st.none() | st.text(max_size=40) | st.from_regex(
    r"\A\s*((Mon|Fri|Sun), )?\d{1,12} (Jan|Feb|Dec|Foo) \d{1,12} \d{1,3}:\d{1,3}(:\d{1,3})?( (GMT|UTC|[+-]\d{4}|EST|-0000))?\s*\Z"),
    now=st.floats(0, 4e9))
@example(header="0 JAN 3000000000 0:0", now=0.0)  # a year no datetime holds: once an OverflowError out of the delivery
@example(header="٦٠٠", now=0.0)
@example(header="Wed, 21 Oct 2015 07:28:00", now=0.0)
@example(header="١ JAN ٠ ٠:٠ GMT", now=0.0)  # Python's int() reads any script's digits; http.client decodes Latin-1: never these
@example(header="³", now=0.0)  # a digit to str.isdigit(), not to float(): Latin-1, so a header can carry it
def test_retry_after_never_raises_and_is_none_or_zero_to_an_hour(header: str | None, now: float) -> None:
    """Whatever a server sends, the answer is a wait from 0 to an hour, or None (use the backoff): never an exception,
    which would cost the delivery a "bug in gtui" instead of the server's word."""
    wait = retry_after(header, now)
    assert wait is None or 0.0 <= wait <= RETRY_AFTER_CAP
    if header is None or not any(char.isdecimal() for char in header):
        assert wait is None  # not a number, and no date without a day's number: nothing to honour


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_the_digest_without_openssl_is_sha256(data: bytes) -> None:
    import hashlib

    from gtcore.core.digests import sha256_hex

    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
