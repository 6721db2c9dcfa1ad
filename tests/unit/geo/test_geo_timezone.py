"""Local capture time: the wall clock at the place, and where its offset came from."""

from __future__ import annotations

import pytest

from photovault.geo.timezone import format_offset, local_time
from photovault.results import LocalTime

BERLIN = (52.52, 13.405)
SYDNEY = (-33.8688, 151.2093)
LISBON = (38.7223, -9.1393)


def test_a_time_without_offset_at_23_30_stays_on_its_local_day() -> None:
    local, zone = local_time("2023-12-24T23:30:00", False, *BERLIN)
    assert local == "2023-12-24T23:30:00"
    assert zone == LocalTime("+01:00", "Europe/Berlin", "position")


def test_a_utc_time_is_converted_to_the_wall_clock_at_the_position() -> None:
    local, zone = local_time("2023-12-24T22:30:00Z", False, *BERLIN)
    assert local == "2023-12-24T23:30:00"
    assert zone == LocalTime("+01:00", "Europe/Berlin", "position")


def test_a_utc_time_can_move_to_the_next_local_day() -> None:
    local, zone = local_time("2023-12-24T23:30:00Z", False, *SYDNEY)
    assert local == "2023-12-25T10:30:00"  # Sydney is on summer time in December
    assert zone == LocalTime("+11:00", "Australia/Sydney", "position")


def test_the_offset_follows_daylight_saving_on_the_date() -> None:
    assert local_time("2024-07-01T12:00:00", False, *SYDNEY)[1] == LocalTime(
        "+10:00", "Australia/Sydney", "position"
    )
    assert local_time("2024-07-01T12:00:00", False, *BERLIN)[1] == LocalTime(
        "+02:00", "Europe/Berlin", "position"
    )
    assert local_time("2024-01-15T12:00:00", False, *LISBON)[1] == LocalTime(
        "+00:00", "Europe/Lisbon", "position"
    )


def test_an_offset_the_file_recorded_is_kept_with_its_wall_clock() -> None:
    local, zone = local_time("2024-07-01T14:03:22.25+02:00", True, *SYDNEY)
    assert local == "2024-07-01T14:03:22.25"
    assert zone == LocalTime("+02:00", None, "exif")


def test_a_recorded_offset_is_used_without_gps() -> None:
    local, zone = local_time("2024-07-01T14:03:22-05:30", True, None, None)
    assert (local, zone) == ("2024-07-01T14:03:22", LocalTime("-05:30", None, "exif"))


def test_without_offset_or_gps_the_wall_clock_is_taken_as_it_is() -> None:
    local, zone = local_time("2024-07-01T14:03:22", False, None, None)
    assert (local, zone) == ("2024-07-01T14:03:22", LocalTime(None, None, None))


def test_at_sea_the_nautical_zone_gives_the_offset() -> None:
    local, zone = local_time("2024-07-01T12:00:00Z", False, 40.0, -30.0)
    assert local == "2024-07-01T10:00:00"
    assert zone == LocalTime("-02:00", "Etc/GMT+2", "position")


def test_the_zone_lookup_is_injected() -> None:
    local, zone = local_time(
        "2024-03-10T12:00:00Z", False, 1.0, 2.0, zone_at=lambda a, b: "Asia/Kolkata"
    )
    assert local == "2024-03-10T17:30:00"
    assert zone == LocalTime("+05:30", "Asia/Kolkata", "position")


@pytest.mark.parametrize("value", [None, "", "not a date", "2024-13-01T00:00:00"])
def test_an_unreadable_time_gives_nothing(value: str | None) -> None:
    assert local_time(value, False, *BERLIN) == (None, None)


def test_offsets_are_formatted_with_sign_hours_and_minutes() -> None:
    from datetime import timedelta

    assert format_offset(timedelta(hours=-3, minutes=-30)) == "-03:30"
    assert format_offset(timedelta(0)) == "+00:00"
    assert format_offset(None) is None


def test_an_offset_not_recorded_as_local_is_read_as_an_instant_and_converted() -> None:
    # e.g. a video's CreateDate, which QuickTime stores in UTC
    local, zone = local_time("2024-07-01T10:00:00+00:00", False, *BERLIN)
    assert (local, zone) == (
        "2024-07-01T12:00:00",
        LocalTime("+02:00", "Europe/Berlin", "position"),
    )


def test_the_hour_repeated_when_summer_time_ends_reads_as_the_first() -> None:
    local, zone = local_time("2023-10-29T02:30:00", False, *BERLIN)
    assert (local, zone) == (
        "2023-10-29T02:30:00",
        LocalTime("+02:00", "Europe/Berlin", "position"),
    )


def test_a_utc_time_without_gps_is_read_in_the_machines_zone() -> None:
    """A phone clip with location off records UTC only: 00:30 in Tokyo is 15:30 UTC the
    day before; the NAS's own zone is the better guess of where the family was."""
    wall, zone = local_time(
        "2024-06-01T15:30:00Z", False, None, None, host_zone=lambda: "Asia/Tokyo"
    )
    assert wall == "2024-06-02T00:30:00"
    assert zone == LocalTime("+09:00", "Asia/Tokyo", "host")


def test_a_utc_time_without_gps_stays_utc_on_a_machine_set_to_utc_or_nothing() -> None:
    for host in ("UTC", None, "Not/AZone"):
        wall, zone = local_time(
            "2024-06-01T15:30:00Z", False, None, None, host_zone=lambda h=host: h
        )
        assert wall == "2024-06-01T15:30:00" and zone is not None and zone.source == "exif"


def test_the_machines_zone_comes_from_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    from photovault.geo.timezone import machine_zone

    monkeypatch.setenv("TZ", ":Europe/Lisbon")
    assert machine_zone() == "Europe/Lisbon"
