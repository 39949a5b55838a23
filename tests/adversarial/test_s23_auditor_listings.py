"""Session 23 auditor review: text a proposer or a publisher writes, shown raw in the listings
and diffs a second person or an auditor reads (docs/benchmarks/s23-redteam-auditor23.md).

Each test is an attack that worked before its fix: a terminal runs ANSI escapes (``ESC [1A``
moves up, ``ESC [2K`` clears a line, ``ESC [8m`` hides text), a carriage return rewrites the
line, a newline forges one, and Unicode's bidirectional overrides reorder what is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.policybundle import PolicyBundle
from hub.cli import main
from tests.cli_keys import admin_args

# a line another person reads as "approved by carol", after a real line it erases
FORGED = "tighten\x1b[2K\r\nCHG-0\tchange\tactivated\tby=carol\tapproved_by=dave\tok\x1b[8m"


def run(data: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*admin_args(data), *args])
    return result.exit_code, result.stdout, result.stderr


def _hostile(out: str) -> list[str]:
    """The raw controls and bidi overrides in ``out`` (its line breaks excepted)."""
    return [
        c
        for c in out
        if (ord(c) < 0x20 and c not in "\n\t")
        or 0x7F <= ord(c) < 0xA0
        or ord(c) in (0x2028, 0x2029)
        or 0x202A <= ord(c) <= 0x202E
        or 0x2066 <= ord(c) <= 0x2069
    ]


@pytest.mark.parametrize(
    "comment",
    [
        # the approver's terminal moves up over the added rule and clears it
        "# style only\x1b[1A\x1b[2K\x1b[1A\x1b[2K",
        # Trojan Source: the rule reads differently from how it is evaluated
        "# \u202eadmin only\u202c",
        "# a line\u2028break",
    ],
)
def test_a_policy_bundle_hiding_its_diff_from_the_approver_is_refused(
    tmp_path: Path, comment: str
) -> None:
    """A proposer (``policy.propose``) added a rule to ``hub/authz.rego`` with a comment whose
    escapes, printed by ``hub policy diff`` (raw), erased the rule from the approver's screen;
    the bundle compiled and passed its cases, so it was recorded for approval. Such text is
    never a policy's: refused naming the file, the line and the character, nothing proposed."""
    data = tmp_path / "data"
    shipped = PolicyBundle.from_dir()
    rego = tmp_path / "authz.rego"
    rego.write_text(shipped.files["hub/authz.rego"] + "\n" + comment + "\n", "utf-8")
    before = run(data, "policy", "history")
    assert before[0] == 0, before[2]
    code, out, err = run(data, "policy", "propose", str(rego), "--reason", "style")
    assert code == 1, out
    assert "hub/authz.rego" in err and "line " in err and "character" in err, err
    assert not _hostile(err), err
    assert run(data, "policy", "history")[1] == before[1]  # nothing proposed


def test_policy_and_config_histories_show_a_reason_on_its_own_line(tmp_path: Path) -> None:
    """``--reason`` is the proposer's text, printed raw as the last column of ``hub policy
    history`` and ``hub config list``: a newline and ``ESC [2K`` wrote a false change line
    "by=carol approved_by=dave" for whoever reads the history. Each field is one escaped line
    now; the reason is recorded as given."""
    data = tmp_path / "data"
    shipped = PolicyBundle.from_dir()
    doc = json.loads(shipped.files["hub/data.json"])
    doc["open_cases"] = ["CASE-9"]
    new = tmp_path / "data.json"
    new.write_text(json.dumps(doc, indent=2) + "\n")
    code, out, err = run(data, "policy", "propose", str(new), "--reason", FORGED)
    assert code == 0, err
    assert json.loads(out)["reason"] == FORGED  # recorded as given
    code, out, err = run(
        data, "config", "propose", "registry.config:t-value", "full", "--reason", FORGED
    )
    assert code == 0, err
    for listing in (("policy", "history"), ("config", "list")):
        code, out, err = run(data, *listing)
        assert code == 0, err
        assert len(out.splitlines()) == 1, out
        assert not _hostile(out), out
        assert "tighten\\x1b[2K\\x0d\\x0aCHG-0\\x09change" in out


def test_principals_list_shows_an_approval_reason_on_its_own_line(tmp_path: Path) -> None:
    """``hub principals list`` printed an enrolment's approval reason (the approver's
    ``--reason``) raw after "approved by": the same forged line, in the list an access
    review reads."""
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:  # the hub's first people (the bootstrap window closed): an enrolment is approved
        root = h.keys.create(["admin"], owner="root")
        ann = h.keys.create(["admin"], owner="ann")
        h.keys.create(["compliance_officer"], owner="carol")
        h.keys.create(["security_admin"], owner="dave")
        ticket = h.keys.issue(h.keys.verify(*root.token.split(":")), ["security_admin"], owner="e")
        eid = ticket.enrolment_id  # type: ignore[union-attr]
        h.keys.approve_enrolment(h.keys.verify(*ann.token.split(":")), eid, FORGED)
    finally:
        h.close()
    code, out, err = run(data, "principals", "list")
    assert code == 0, err
    assert not _hostile(out), out
    line = next(x for x in out.splitlines() if x.startswith("e\t"))
    assert "approved by ann: tighten\\x1b[2K\\x0d\\x0aCHG-0\\x09change" in line, line


@pytest.mark.parametrize("text", ["# \x08\x08\x08\x08 ok", "# \x9b2K", "# ok\x1b[8m"])
def test_a_control_in_a_proposed_file_is_refused_through_the_service(
    tmp_path: Path, text: str
) -> None:
    """The same through ``PolicyChanges.propose`` (``POST /v1/policy/changes`` takes the files'
    text as given): a backspace, a one-byte C1 CSI or an escape in a comment compiled and was
    recorded for approval. Refused with ``policy_hidden_text``, nothing recorded; a CRLF file
    (an editor's line ends) is not hidden text and is still accepted."""
    from core.policybundle import PolicyError
    from core.ports.policy import Principal
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    h = bootstrap(load_settings(environ={}, data_dir=tmp_path / "data"))
    try:
        admin = Principal("root", frozenset({"admin"}), "default")
        shipped = PolicyBundle.from_dir().files
        before = len(h.policy_changes.store.changes())
        with pytest.raises(PolicyError) as err:
            h.policy_changes.propose(
                admin, {**shipped, "hub/authz.rego": shipped["hub/authz.rego"] + text}, "x"
            )
        assert err.value.code == "policy_hidden_text" and "hub/authz.rego" in err.value.message
        assert len(h.policy_changes.store.changes()) == before
        crlf = shipped["hub/authz.rego"].replace("\n", "\r\n")
        change = h.policy_changes.propose(admin, {**shipped, "hub/authz.rego": crlf}, "CRLF")
        assert change.change_id
    finally:
        h.close()


def test_hub_policy_diff_of_a_change_recorded_before_shows_its_controls_escaped(
    tmp_path: Path,
) -> None:
    """A change recorded before the refusal (its event written as ``propose`` wrote it then)
    keeps its text; ``hub policy diff`` prints each line escaped, line breaks kept, so the
    hidden rule is visible to whoever reads the diff."""
    from core.events import OutgoingEvent
    from governance.changes import bundle_diff
    from governance.store import POLICIES_TOPIC, PROPOSED
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    data = tmp_path / "data"
    admin_args(data)
    shipped = PolicyBundle.from_dir()
    hidden = shipped.files["hub/authz.rego"] + "# ok\x1b[1A\x1b[2K\n"
    files = {**shipped.files, "hub/authz.rego": hidden}
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        value = {
            "change_id": "c-old",
            "resource": "policy",
            "kind": "change",
            "bundle_version": PolicyBundle.from_files(files).version,
            "base_version": shipped.version,
            "files": files,
            "diff": bundle_diff(shipped.files, files),
            "proposed_by": "admin",
            "proposed_by_key": "",
            "reason": "old",
            "requires_approval": True,
            "tests_passed": 1,
            "proposed_at": "2026-01-01T00:00:00+00:00",
        }
        event = OutgoingEvent(value=value, event_type=PROPOSED, key="c-old")
        h.publisher.publish(POLICIES_TOPIC, [event], producer="admin", tenant="default")
    finally:
        h.close()
    code, out, err = run(data, "policy", "diff", "c-old")
    assert code == 0, err
    assert not _hostile(out), out
    assert "+# ok\\x1b[1A\\x1b[2K\n" in out and out.count("\n") == value["diff"].count("\n")
