"""Every recorded real Responses stream, replayed through `generate()` and `stream()` over HTTP.

The expectations in ``tests/data/recorded/index.json`` were computed by the official
``openai`` client from the same bytes (see that folder's README). Where llmkit reads a
fixture differently on purpose, `DEVIATIONS` says why.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings, strategies as st

import llmkit

DATA = Path(__file__).parent / "data" / "recorded"
INDEX: dict[str, Any] = json.loads((DATA / "index.json").read_text(encoding="utf-8"))
ENTRIES: list[dict[str, Any]] = INDEX["entries"]

DEVIATIONS = {
    # A hand-edited fixture whose terminal `output` list was emptied while the stream
    # itself carried a complete function call. The oracle reads only the terminal list;
    # llmkit keeps items that were streamed and finished (`output_item.done`), so the
    # call is not lost.
    "vercel-ai/_edited-or-synthetic__issue-19067-parallel-tool-call-wrapper.sse": "tool_calls",
}


def _model(body: bytes | Iterator[bytes]) -> llmkit.LanguageModel:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    provider = llmkit.Provider(
        use_responses_api=True,
        api_key="sk-test",
        base_url="http://127.0.0.1:9/v1",
        http_client=client,
        max_retries=0,
    )
    return provider.language_model("gpt-test")


def _ids(entry: dict[str, Any]) -> str:
    return str(entry["file"])


def _outcome(entry: dict[str, Any]) -> str:
    return str(entry["expected"]["outcome"])


def _check_completed(entry: dict[str, Any], response: llmkit.Response) -> None:
    expected = entry["expected"]
    deviation = DEVIATIONS.get(entry["file"])
    if expected["output_text"] is not None:
        assert response.text == expected["output_text"]
    if expected["tool_calls"] is not None and deviation != "tool_calls":
        calls = [
            [c.call_id, c.name, c.arguments] for c in response.tool_calls if c.kind == "function"
        ]
        assert calls == expected["tool_calls"]
    if expected["custom_tool_calls"] is not None:
        custom = [
            [c.call_id, c.name, c.arguments] for c in response.tool_calls if c.kind == "custom"
        ]
        assert custom == expected["custom_tool_calls"]
    usage = expected["usage"]
    if usage is not None:
        got = {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "total_tokens": response.usage.total_tokens,
            "cached_tokens": response.usage.cache_read_tokens,
            "reasoning_tokens": response.usage.reasoning_tokens,
            "cache_write_tokens": response.usage.cache_write_tokens,
        }
        if usage["total_tokens"] is None:  # not sent: llmkit adds input and output
            usage = {**usage, "total_tokens": usage["input_tokens"] + usage["output_tokens"]}
        assert got == {k: (0 if v is None else v) for k, v in usage.items()}
    if expected["response_id"] is not None:
        assert response.id == expected["response_id"]
    if expected["model"] is not None:
        assert response.metadata.model == expected["model"]
    assert response.finish_reason == _finish_reason(expected, response)


def _finish_reason(expected: dict[str, Any], response: llmkit.Response) -> llmkit.FinishReason:
    if expected["status"] == "incomplete":
        return {
            "max_output_tokens": llmkit.FinishReason.LENGTH,
            "content_filter": llmkit.FinishReason.CONTENT_FILTER,
        }.get(expected["incomplete_reason"], llmkit.FinishReason.OTHER)
    return llmkit.FinishReason.TOOL_CALLS if response.tool_calls else llmkit.FinishReason.STOP


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids)
def test_generate_matches_the_official_client(entry: dict[str, Any]) -> None:
    model = _model((DATA / entry["file"]).read_bytes())
    outcome = _outcome(entry)
    if outcome in ("completed", "incomplete"):
        _check_completed(entry, model.generate(llmkit.Call("replay")))
        return
    expected_error: type[llmkit.LLMKitError] = {
        "failed": llmkit.ResponseFailed,
        "error": llmkit.APIError,
        "broken": llmkit.ProtocolError,
    }[outcome]
    with pytest.raises(expected_error) as caught:
        model.generate(llmkit.Call("replay"))
    assert caught.value.partial is not None
    error = entry["expected"]["error"]
    if error is not None:
        assert isinstance(caught.value, llmkit.APIError)
        assert caught.value.code == error["code"]
        assert caught.value.message == error["message"]


@pytest.mark.parametrize(
    "entry",
    [e for e in ENTRIES if _outcome(e) in ("completed", "incomplete")],
    ids=_ids,
)
def test_stream_deltas_join_to_the_generated_text(entry: dict[str, Any]) -> None:
    body = (DATA / entry["file"]).read_bytes()
    generated = _model(body).generate(llmkit.Call("replay"))
    with _model(body).stream(llmkit.Call("replay")) as stream:
        deltas = "".join(p.delta for p in stream if isinstance(p, llmkit.TextDelta))
    assert _untimed(stream.response) == _untimed(generated)
    if entry["oracle"].get("deltas_match_output_text") is not False:
        assert deltas == generated.text


def _untimed(response: llmkit.Response) -> llmkit.Response:
    metadata = dataclasses.replace(response.metadata, time_to_first_token=None, duration=0.0)
    return dataclasses.replace(response, metadata=metadata)


def _chunks(body: bytes, cuts: list[int]) -> Iterator[bytes]:
    last = 0
    for cut in sorted(set(cuts)):
        yield body[last:cut]
        last = cut
    yield body[last:]


_SPLIT_SAMPLES = random.Random(7).sample(
    [e for e in ENTRIES if _outcome(e) == "completed" and e["bytes"] < 60_000], 12
)


@pytest.mark.parametrize("entry", _SPLIT_SAMPLES, ids=_ids)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_splitting_the_byte_stream_anywhere_yields_the_same_parts(
    entry: dict[str, Any], data: st.DataObject
) -> None:
    body = (DATA / entry["file"]).read_bytes()
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(body) - 1), max_size=40))
    with _model(body).stream(llmkit.Call("replay")) as whole:
        expected = [p for p in whole if not isinstance(p, llmkit.Finish)]
    with _model(_chunks(body, cuts)).stream(llmkit.Call("replay")) as split:
        got = [p for p in split if not isinstance(p, llmkit.Finish)]
    assert got == expected
    assert split.response.content == whole.response.content


SHARED = Path(__file__).resolve().parents[2] / "shared" / "recorded"


@pytest.mark.skipif(not (SHARED / "index.json").exists(), reason="the team's shared/ is absent")
def test_the_copied_recordings_are_every_streamed_recording_of_the_shared_collection() -> None:
    shared = json.loads((SHARED / "index.json").read_text(encoding="utf-8"))
    streamed = [e for e in shared["entries"] if e["file"].endswith(".sse")]
    assert [e["file"] for e in streamed] == [e["file"] for e in ENTRIES]
    assert [e["expected"] for e in streamed] == [e["expected"] for e in ENTRIES]
    for entry in streamed:
        assert (SHARED / entry["file"]).read_bytes() == (DATA / entry["file"]).read_bytes()
