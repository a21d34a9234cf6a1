"""`SSEParser` gives exactly the payloads of httpx-sse's reference decoder, however split."""

from __future__ import annotations

import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import given, settings, strategies as st

import llmkit
from llmkit.transports._sse import SSEParser


def reference(body: str) -> list[str]:
    """httpx-sse's decoding of a whole body: the data of every dispatched event."""
    lines, decoder = SSELineDecoder(), SSEDecoder()
    payloads = []
    for line in [*lines.decode(body), *lines.flush()] if body else []:
        event = decoder.decode(line)
        if event is not None and event.data:
            payloads.append(event.data)
    return payloads


def parse(chunks: list[str], max_event_size: int | None = None) -> list[str]:
    parser = SSEParser() if max_event_size is None else SSEParser(max_event_size)
    payloads = []
    for chunk in chunks:
        payloads += parser.feed(chunk)
    return payloads + parser.flush()


text = st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=12)
line = st.one_of(
    st.builds(lambda v: f"data: {v}", text),
    st.builds(lambda v: f"data:{v}", text),
    st.builds(lambda v: f"event: {v}", text),
    st.builds(lambda v: f": {v}", text),
    st.builds(lambda v: f"id: {v}", text),
    st.just("retry: 10"),
    st.just("data"),
    text,
)
block = st.lists(line, min_size=1, max_size=4)
newline = st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"])


@st.composite
def bodies(draw: st.DrawFn) -> str:
    nl = draw(newline)
    blocks = draw(st.lists(block, max_size=6))
    body = "".join(nl.join(b) + nl + nl for b in blocks)
    if draw(st.booleans()):
        body += nl.join(draw(block))  # an unterminated last event: dropped
    return body


def split(body: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True) if b > a]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(bodies(), st.lists(st.integers(min_value=0), max_size=8))
def test_any_body_split_anywhere_gives_the_reference_payloads(body: str, cuts: list[int]) -> None:
    assert parse(split(body, cuts)) == reference(body)


def test_the_common_shapes() -> None:
    body = 'event: a\ndata: {"x":1}\n\ndata: [DONE]\n\n: keepalive\n\ndata: two\ndata: lines\n\n'
    assert parse([body]) == ['{"x":1}', "[DONE]", "two\nlines"]


def test_a_boundary_split_between_chunks() -> None:
    assert parse(["data: a\n", "\ndata: b\n", "\n"]) == ["a", "b"]


def test_crlf_switches_to_the_specification_path_mid_stream() -> None:
    assert parse(["data: a\n\ndata: b\r", "\n\r\ndata: c\r\n\r\n"]) == ["a", "b", "c"]


def test_an_unterminated_last_event_is_dropped() -> None:
    assert parse(["data: a\n\ndata: cut"]) == ["a"]


def test_an_oversized_event_is_refused() -> None:
    parser = SSEParser(max_event_size=100)
    parser.feed("data: " + "x" * 60)
    with pytest.raises(llmkit.ProtocolError, match="exceeded 100"):
        parser.feed("x" * 60)


def test_many_chunks_of_one_huge_event() -> None:
    chunks = ["data: "] + ["x" * 1000] * 2000 + ["\n\n"]
    (payload,) = parse(chunks)
    assert len(payload) == 2_000_000


def test_a_long_stream_of_split_events_is_bounded_per_event_not_in_total() -> None:
    # 200 events of 60 characters each, every one cut in two: 12,000 characters in all,
    # far over the limit of 100, but no single event is.
    chunks = []
    for n in range(200):
        event = f"data: {n:054d}\n\n"
        chunks += [event[:30], event[30:]]
    payloads = parse(chunks, max_event_size=100)
    assert payloads == [f"{n:054d}" for n in range(200)]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_event_of_exactly_the_limit_passes_and_one_more_character_is_refused(
    newline: str,
) -> None:
    # What is held before the blank line counts, its line ending read as one "\n".
    ending = "" if newline == "\n" else newline
    width = 94 - len(ending and "\n")
    exact, over = "data: " + "x" * width + ending, "data: " + "x" * (width + 1) + ending
    assert parse([exact, newline * 2], max_event_size=100) == [exact[6:].strip()]
    parser = SSEParser(max_event_size=100)
    with pytest.raises(llmkit.ProtocolError, match="exceeded 100"):
        parser.feed(over)
        parser.feed(newline * 2)


def test_an_unfinished_line_counts_towards_the_limit_after_a_carriage_return() -> None:
    parser = SSEParser(max_event_size=100)
    assert parser.feed("data: a\r\n\r\n") == ["a"]  # now on the specification path
    parser.feed("data: " + "x" * 90)  # no line end yet
    with pytest.raises(llmkit.ProtocolError, match="exceeded 100"):
        parser.feed("x" * 20)


def test_an_event_growing_line_by_line_is_refused() -> None:
    parser = SSEParser(max_event_size=100)
    parser.feed("data: " + "x" * 50)
    with pytest.raises(llmkit.ProtocolError, match="exceeded 100"):
        parser.feed("\ndata: " + "y" * 50)  # each chunk starts a new line of the event


def test_the_refusal_says_what_was_counted() -> None:
    parser = SSEParser(max_event_size=10)
    with pytest.raises(llmkit.ProtocolError) as caught:
        parser.feed(": comment\n\n")
    assert caught.value.message == (
        "a server-sent event exceeded 10 characters "
        "(or that much arrived without an event with data)"
    )


def test_comments_and_blank_lines_of_exactly_the_limit_pass_and_one_more_is_refused() -> None:
    # Blocks without data, cut at blank lines in the same chunk, count towards the limit.
    assert SSEParser(max_event_size=100).feed(": " + "x" * 96 + "\n\n") == []
    with pytest.raises(llmkit.ProtocolError, match="exceeded 100"):
        SSEParser(max_event_size=100).feed(": " + "x" * 97 + "\n\n")


def test_blank_lines_count_from_the_first_character_of_the_body() -> None:
    assert SSEParser(max_event_size=3).feed("\n\n\n") == []
    with pytest.raises(llmkit.ProtocolError, match="exceeded 3"):
        SSEParser(max_event_size=3).feed("\n\n\n\n")


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    # Read as two line ends, the \r and the \n would end the event after "a".
    assert parse(["data: a\r", "\ndata: b\r\n\r\n"]) == ["a\nb"]
    assert parse(["data: a\r", "\n", "data: b\r", "\n\r", "\n"]) == ["a\nb"]


def test_a_run_of_blank_lines_after_an_event_leaves_nothing_held() -> None:
    # The run is one boundary: nothing of it is held or counted towards the next event.
    parser = SSEParser(max_event_size=10)
    assert parser.feed("data: a\n\n\n") == ["a"]
    assert parser.feed("x" * 10) == []
    with pytest.raises(llmkit.ProtocolError, match="exceeded 10"):
        parser.feed("x")
