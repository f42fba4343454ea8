"""Tart's pull progress (TART_FACTS "progress output"), parsed incrementally from raw bytes."""

import pytest

from vm_operator.tart.progress import (
    MAX_LINE,
    Message,
    PhaseChanged,
    ProgressChanged,
    ProgressEvent,
    ProgressParser,
)

REDRAW = b"\x1b[1A\r\x1b[J"  # Tart's InteractiveConsoleLogger.updateLastLine, before each update
DIGEST = b"ghcr.io/cirruslabs/macos-sequoia-base@sha256:" + b"ab" * 32


def pull_output(percentages: list[int], terminal: bool) -> bytes:
    """What `tart pull` prints for an uncached image, CI unset (terminal) or set (plain)."""
    lines = [b"pulling ghcr.io/cirruslabs/macos-sequoia-base:latest...\n",
             b"pulling manifest...\n", b"pulling disk (25.3 GB compressed)...\n"]
    for index, percent in enumerate(percentages):
        redraw = REDRAW if terminal and index > 0 else b""
        lines.append(redraw + b"%d%%\n" % percent)
    lines.append(b"pulling NVRAM...\n")
    return b"".join(lines)


PULL_EVENTS: list[ProgressEvent] = [
    PhaseChanged("pulling", "image"), PhaseChanged("pulling", "manifest"),
    PhaseChanged("pulling", "disk", 25.3), ProgressChanged(0), ProgressChanged(1),
    ProgressChanged(57), ProgressChanged(100), PhaseChanged("pulling", "nvram"),
]


def parse(chunks: list[bytes]) -> tuple[list[ProgressEvent], ProgressParser]:
    parser = ProgressParser()
    events: list[ProgressEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return events, parser


CASES: list[tuple[str, list[bytes], list[ProgressEvent]]] = [
    ("plain form (CI set)", [pull_output([0, 1, 57, 100], terminal=False)], PULL_EVENTS),
    ("terminal form", [pull_output([0, 1, 57, 100], terminal=True)], PULL_EVENTS),
    ("cached and linked", [b"pulling manifest...\n" + DIGEST + b" image is already cached and"
                           b" linked!\n"],
     [PhaseChanged("pulling", "manifest"), PhaseChanged("cached", "cached")]),
    ("cached, symlink made", [b"pulling manifest...\n" + DIGEST + b" image is already cached!"
                              b" creating a symlink...\n"],
     [PhaseChanged("pulling", "manifest"), PhaseChanged("cached", "cached")]),
    ("CRLF line ends", [b"pulling disk (0.8 GB compressed)...\r\n0%\r\n5%\r\n"],
     [PhaseChanged("pulling", "disk", 0.8), ProgressChanged(0), ProgressChanged(5)]),
    ("bare carriage returns redraw one line", [b"0%\r3%\r7%\r"],
     [ProgressChanged(0), ProgressChanged(3), ProgressChanged(7)]),
    ("a percentage never goes down", [b"40%\n30%\n40%\n41%\n"],
     [ProgressChanged(40), ProgressChanged(41)]),
    ("over 100 (re-sent bytes) reads as 100, once", [b"99%\n103%\n100%\n"],
     [ProgressChanged(99), ProgressChanged(100)]),
    ("leading zeros", [b"007%\n"], [ProgressChanged(7)]),
    ("a retried pull starts its count again",
     [pull_output([0, 60], terminal=True),
      b'Error pulling image: "timed out", attempting to re-try...\n',
      pull_output([0, 30, 100], terminal=True)],
     [*PULL_EVENTS[:4], ProgressChanged(60), PhaseChanged("pulling", "nvram"),
      Message('Error pulling image: "timed out", attempting to re-try...'),
      *PULL_EVENTS[:4], ProgressChanged(30), ProgressChanged(100),
      PhaseChanged("pulling", "nvram")]),
    ("Tart's error is a message, not a phase",
     [b'Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404)\n'],
     [Message('Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404)')]),
    ("a last line without a line end", [b"pulling manifest...\nfailed to pull"],
     [PhaseChanged("pulling", "manifest"), Message("failed to pull")]),
    ("blank lines and lone escapes are nothing", [b"\n\n \x1b[J\n\x1b\n\r\n"], []),
    ("control characters are removed from messages", [b"bad\x00 \x07line\x1b[31m red\x1b[0m\n"],
     [Message("bad line red")]),
    ("invalid UTF-8 is replaced", [b"caf\xe9 \xff\n"], [Message("caf\ufffd \ufffd")]),
    ("not a percentage", [b"-5%\n12.5%\n1234567%\n%\n"],
     [Message("-5%"), Message("12.5%"), Message("1234567%"), Message("%")]),
    ("a disk size Tart would not print is a message",
     [b"pulling disk (lots GB compressed)...\n"],
     [Message("pulling disk (lots GB compressed)...")]),
]


@pytest.mark.parametrize(("chunks", "expected"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_events(chunks: list[bytes], expected: list[ProgressEvent]) -> None:
    assert parse(chunks)[0] == expected


@pytest.mark.parametrize(("chunks", "expected"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_events_do_not_depend_on_how_the_bytes_are_split(
        chunks: list[bytes], expected: list[ProgressEvent]) -> None:
    data = b"".join(chunks)
    assert parse([data[i:i + 1] for i in range(len(data))])[0] == expected  # byte by byte
    for cut in range(len(data) + 1):  # every place a pipe read could end
        assert parse([data[:cut], data[cut:]])[0] == expected, f"split at byte {cut}"


def test_state_after_a_pull() -> None:
    _, parser = parse([pull_output([0, 57], terminal=True)])
    assert (parser.phase, parser.percent, parser.compressed_gb) == ("pulling", 57, 25.3)
    assert parser.last_message is None


def test_the_last_unknown_line_is_kept_for_the_error() -> None:
    _, parser = parse([b"pulling manifest...\nwaiting for lock...\n",
                       b"Error: the specified VM \"x\" does not exist"])
    assert parser.last_message == 'Error: the specified VM "x" does not exist'
    assert parser.phase == "pulling"


def test_a_cached_image_has_no_percentage() -> None:
    _, parser = parse([b"pulling manifest...\n" + DIGEST + b" image is already cached and"
                       b" linked!\n"])
    assert (parser.phase, parser.percent) == ("cached", None)


def test_an_endless_line_is_cut_and_memory_stays_bounded() -> None:
    parser = ProgressParser()
    for _ in range(100):
        assert parser.feed(b"x" * MAX_LINE) == []
        assert len(parser._pending) <= MAX_LINE
    events = parser.feed(b"\n42%\n")
    assert len(events) == 2
    assert isinstance(events[0], Message) and events[0].text == "x" * 1000  # MAX_MESSAGE
    assert events[1] == ProgressChanged(42)
