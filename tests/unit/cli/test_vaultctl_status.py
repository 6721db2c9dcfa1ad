"""Human `vaultctl status`: current problems first, sidecar warnings named."""

from __future__ import annotations

from typing import Any

from photovault.cli.vaultctl import format_status


def status(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "version": "0.1.0",
        "pid": 42,
        "paused": False,
        "quiet_hours_active": False,
        "queue_depth": 0,
        "settling": 0,
        "rate_per_second": 0.0,
        "shares": [],
        "quarantined": [],
    }
    st.update(over)
    return st


def test_problems_come_first_with_kind_place_and_message() -> None:
    text = format_status(
        status(
            problems=[
                {"kind": "disk", "since": 1.0, "message": "state dir /s: No space left on device"},
                {"kind": "share", "since": 2.0, "message": "share root missing", "path": "/p"},
            ]
        )
    )
    lines = text.splitlines()
    assert lines[0] == "PROBLEMS (2):"
    assert lines[1].startswith("  disk: state dir /s: No space left on device")
    assert "share: share root missing [/p]" in lines[2]


def test_no_problem_section_while_all_is_well() -> None:
    assert "PROBLEMS" not in format_status(status(problems=[]))


def test_sidecars_left_untouched_are_named_with_the_reason() -> None:
    text = format_status(
        status(sidecar_warnings=[{"path": "/p/car.jpg.xmp", "warning": "is a symbolic link"}])
    )
    assert "/p/car.jpg.xmp: is a symbolic link" in text
