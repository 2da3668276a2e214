"""Reads iCalendar texts with the PyPI `icalendar` library (an implementation independent
of the service's) and prints what each says, as JSON, for the Rust tests to check.

Input on stdin: a JSON array of iCalendar texts. Output: a JSON array, one object per text:
{"method", "calname", "events": [{"uid", "sequence", "dtstamp", "dtstart", "dtend",
"status", "summary", "location", "url", "description", "organizer", "attendees",
"utc"}]}. Times are ISO 8601 in UTC; `utc` says whether every time was given in UTC.
A text the library cannot read fails the script (exit 1) with the reason.
"""

import datetime
import json
import sys

import icalendar


def text(value):
    return None if value is None else str(value)


def instant(component, name):
    prop = component.get(name)
    if prop is None:
        return None, True
    value = prop.dt
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        return value.isoformat(), False
    is_utc = value.utcoffset() == datetime.timedelta(0) and str(value.tzinfo) in ("UTC", "UTC+00:00")
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), is_utc


def read(source):
    calendar = icalendar.Calendar.from_ical(source)
    events = []
    for event in calendar.walk("VEVENT"):
        stamp, stamp_utc = instant(event, "DTSTAMP")
        start, start_utc = instant(event, "DTSTART")
        end, end_utc = instant(event, "DTEND")
        attendees = event.get("ATTENDEE")
        if attendees is None:
            attendees = []
        elif not isinstance(attendees, list):
            attendees = [attendees]
        events.append({
            "uid": text(event.get("UID")),
            "sequence": int(event.get("SEQUENCE", 0)),
            "dtstamp": stamp,
            "dtstart": start,
            "dtend": end,
            "utc": stamp_utc and start_utc and end_utc,
            "status": text(event.get("STATUS")),
            "summary": text(event.get("SUMMARY")),
            "location": text(event.get("LOCATION")),
            "url": text(event.get("URL")),
            "description": text(event.get("DESCRIPTION")),
            "organizer": text(event.get("ORGANIZER")),
            "attendees": [text(attendee) for attendee in attendees],
        })
    return {
        "method": text(calendar.get("METHOD")),
        "calname": text(calendar.get("X-WR-CALNAME")),
        "events": events,
    }


def main():
    sources = json.load(sys.stdin)
    try:
        results = [read(source) for source in sources]
    except Exception as error:  # the library's refusal is the finding
        print(f"icalendar could not read a calendar: {error!r}", file=sys.stderr)
        return 1
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
