"""WebSocket mode of `/v1/responses`: one connection, its lanes and their responses.

Semantics follow PROTOCOL.md §1-§7: `response.create` text frames, `stream_id` lanes
(bookkeeping in `_lanes`: per-lane FIFO, per-lane heads, forks, eviction, the limits and
the no-lane modes), each started response its own task writing frames through one
buffered, lock-serialized writer (so concurrent lanes interleave), the nested error
envelope (with the lane's `stream_id`), `generate: false` warm-ups and the age limit.
Server pings are uvicorn's, configured per connection by `_server`'s protocol class.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from llmkit.testing._core import (
    ABORT_EXTENSION,
    BATCH_BYTES,
    RESPONSES_PATH,
    Message,
    Receive,
    Scope,
    Send,
    ServerCore,
    request_id,
    unauthorized,
)
from llmkit.testing._engine import Exchange, Production, replay_outcome, validate
from llmkit.testing._events import ApiError, dumps
from llmkit.testing._gateway import error_frame, fake_warmup, without_fake_chain
from llmkit.testing._lanes import Lanes, Pending, Refusal
from llmkit.testing._sse import SseBlock
from llmkit.testing._state import StoredResponse
from llmkit.testing._steer import (
    Steer,
    SteerRefused,
    SteerState,
    accepted_event,
    failed_event,
    pending_event,
    required_input,
    steer_items,
    steerable,
    waits_for_tools,
)
from llmkit.testing._stream import Payload, Pump

SendTexts = Callable[[list[str]], Awaitable[None]]
_REJECT_MESSAGES = {
    401: "Unauthorized.",
    403: "Forbidden.",
    404: "Not found.",
    426: "Upgrade Required.",
    429: "Rate limit reached for requests.",
    500: "The server had an error while processing your request.",
    503: "The server is overloaded or not ready yet.",
}


async def deny(scope: Scope, send: Send, error: ApiError) -> None:
    """Refuse the upgrade with an ordinary HTTP error response (like the real service)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    data = dumps(error.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"x-request-id", request_id().encode()),
    ]
    start = {"type": "websocket.http.response.start", "status": error.status, "headers": headers}
    await send(start)
    await send({"type": "websocket.http.response.body", "body": data})
    denied = _extension(scope, "denied")
    if denied is not None:
        denied()


def _extension(scope: Scope, name: str) -> Callable[[], None] | None:
    """A hook of llmkit's uvicorn protocol class (absent under other servers)."""
    extension = scope.get("extensions", {}).get(ABORT_EXTENSION)
    return extension.get(name) if isinstance(extension, dict) else None


def _send_texts(scope: Scope) -> SendTexts | None:
    """The protocol's "several text frames, one write" hook (absent under other servers)."""
    extension = scope.get("extensions", {}).get(ABORT_EXTENSION)
    return extension.get("send_texts") if isinstance(extension, dict) else None


async def handle_websocket(core: ServerCore, scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    abort = _extension(scope, "abort")
    if scope["path"].rstrip("/") != RESPONSES_PATH:
        await deny(scope, send, ApiError(404, f"Invalid URL (GET {scope['path']})"))
        return
    if not core.authorized(scope):
        await deny(scope, send, unauthorized(scope))
        return
    rejected, status = core.faults.take_upgrade_rejection()
    if rejected and status is None:
        if abort is not None:
            abort()
        else:
            await send({"type": "websocket.close", "code": 1011})
        return
    if rejected and status is not None:
        text = _REJECT_MESSAGES.get(status, "The upgrade was rejected.")
        kind = "server_error" if status >= 500 else "invalid_request_error"
        await deny(scope, send, ApiError(status, text, type=kind))
        return
    await send({"type": "websocket.accept", "headers": [(b"x-request-id", request_id().encode())]})
    await Connection(core, send, abort, _send_texts(scope)).run(receive)


def _limit_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    return f"{seconds:g} seconds"


class Connection:
    """One accepted WebSocket: reads frames, runs each response as its own task (`_lanes`)."""

    def __init__(
        self,
        core: ServerCore,
        send: Send,
        abort: Callable[[], None] | None,
        send_texts: SendTexts | None = None,
    ) -> None:
        self.core = core
        self._send = send
        self._abort = abort
        self._send_texts = send_texts
        self._pending: list[str] = []
        self._pending_size = 0
        self.id = core.stats.open_connection()
        self.opened = time.monotonic()
        self.lanes = Lanes(core.lane_settings())
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self.steering: set[SteerState] = set()
        """The steers of each running lane (`_steer`)."""
        self.ended: dict[str, str | None] = {}
        """Ids of responses that ended on this connection, with their lane's echo."""
        self.parked: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}
        """Steer input waiting for the client's create after ``response.steer.pending``:
        by parent response id, with the lane it must come on."""

    @property
    def busy(self) -> bool:
        return self.lanes.live > 0

    def request_close(self, code: int, reason: str) -> None:
        """Thread-safe: ask the connection's loop to close this socket."""
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self.inbox.put_nowait, ("close", code, reason))

    async def run(self, receive: Receive) -> None:
        self.core.register(self.id, self)
        reader = asyncio.create_task(self._read(receive))
        try:
            await self._dispatch()
        finally:
            self.closing = True
            tasks = [t for t in (*self.tasks, reader) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            self.core.unregister(self.id)
            self.core.stats.close_connection(self.id)

    async def _dispatch(self) -> None:
        while True:
            item = await self.inbox.get()
            if item[0] == "message":
                if await self.on_message(item[1]):
                    return
            elif item[0] == "close":
                await self.close(item[1], item[2])
                return
            elif item[0] == "abort":
                self.abort()
                return
            else:  # the peer disconnected
                return

    async def _read(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.inbox.put_nowait(("disconnect",))
                return
            self.inbox.put_nowait(("message", message))

    # -- outgoing ------------------------------------------------------------------------------
    async def emit(self, payload: Payload) -> None:
        """Send one frame now (after any buffered ones)."""
        text = payload.data if isinstance(payload, SseBlock) else dumps(payload)
        async with self._lock:
            await self._write_pending()
            await self._send({"type": "websocket.send", "text": text})

    async def queue(self, payload: Payload) -> None:
        """Buffer one frame of a response; written by `flush` (the pump's) or when large."""
        text = payload.data if isinstance(payload, SseBlock) else dumps(payload)
        assert text is not None
        self._pending.append(text)
        self._pending_size += len(text)
        if self._pending_size >= BATCH_BYTES:
            await self.flush()
            await asyncio.sleep(0)  # let the loop see a disconnect and serve the others
        elif self.lanes.in_flight > 1:
            await asyncio.sleep(0)  # concurrent lanes interleave event by event

    async def flush(self) -> None:
        async with self._lock:
            await self._write_pending()

    async def _write_pending(self) -> None:
        if not self._pending:
            return
        texts = self._pending
        self._pending, self._pending_size = [], 0
        if self._send_texts is not None:
            await self._send_texts(texts)
            return
        for text in texts:  # pragma: no cover - only without the llmkit protocol class
            await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        self.closing = True
        with contextlib.suppress(Exception):  # the peer may be gone already
            async with self._lock:
                await self._write_pending()
                await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closing = True
        if self._abort is not None:
            self._abort()
        else:  # pragma: no cover - only without the llmkit protocol class
            self.inbox.put_nowait(("close", 1011, "aborted"))

    async def error(
        self, error: ApiError, record: int | None = None, stream_id: str | None = None
    ) -> None:
        if record is not None:
            self.core.engine.fail(record, error.code or error.type)
        await self.emit(_tag(error.nested(), stream_id))

    # -- incoming --------------------------------------------------------------------------------
    async def on_message(self, message: Message) -> bool:
        """Handle one frame; True when the connection must end."""
        text, data = message.get("text"), message.get("bytes")
        size = len(text.encode()) if text is not None else len(data or b"")
        limit = self.core.faults.max_frame_size
        if limit is not None and size > limit:
            self.core.engine.fail(self.core.engine.record("websocket", self.id, None, size), "1009")
            await self.close(1009, "message too big")
            return True
        body = _parse(text)
        if isinstance(body, ApiError):
            await self.error(body)
            return False
        if body.get("type") == "response.steer":
            await self.on_steer(body)
            return False
        return await self.on_create(body, size)

    def unpark(self, body: dict[str, Any]) -> dict[str, Any]:
        """Prepend the steer input parked for this create's parent and lane (§2.3 step 4)."""
        parent = body.get("previous_response_id")
        parked = self.parked.get(parent) if isinstance(parent, str) else None
        if parked is None or parked[0] != (body.get("stream_id") if self.lanes.lanes_on else None):
            return body
        del self.parked[str(parent)]
        given = body.get("input", [])
        given = (
            [{"type": "message", "role": "user", "content": given}]
            if isinstance(given, str)
            else list(given)
        )
        return {**body, "input": parked[1] + given}

    async def on_steer(self, frame: dict[str, Any]) -> None:
        """Answer a ``response.steer``: queued on the running response, or refused."""
        target = frame.get("previous_response_id")
        state = next(
            (s for s in self.steering if target is not None and s.response_id == target), None
        )
        echo = state.echo if state is not None else self.ended.get(str(target))
        try:
            if state is None:
                if isinstance(target, str) and target in self.ended:
                    raise SteerRefused(
                        "response_already_completed", f"Response '{target}' has already completed."
                    )
                raise SteerRefused("response_not_found", f"Response '{target}' was not found.")
            if not self.core.steering:
                raise SteerRefused(
                    "steering_not_supported", "Steering is not supported for this model."
                )
            steer = state.accept(steer_items(frame))
        except SteerRefused as refused:
            event = failed_event(target, frame.get("input"), refused.code, refused.message)
            self.core.stats.count_steer(self.id, failed=True)
            if state is None:
                await self.emit(_tag(event, echo))
            else:  # in order with the lane's other answers; a hold ends with it too
                state.acks.append(event)
                state.arrived.set()
            return
        self.core.stats.count_steer(self.id, failed=False)
        state.acks.append(accepted_event(steer.id, str(target)))
        state.arrived.set()

    async def on_create(self, body: dict[str, Any], size: int) -> bool:
        record = self.core.engine.record("websocket", self.id, body, size)
        body = self.unpark(body)  # the record keeps what the client sent
        closing = self.core.faults.take_close(warmup=body.get("generate") is False)
        if closing is not None:  # a gateway that does not serve this: no event, a clean close
            self.core.engine.fail(record, "closed")
            await self.close(*closing)
            return True
        if self.core.ws_fake_warmups:
            if body.get("generate") is False:
                await self.fake_warmup(body, record)
                return False
            body = without_fake_chain(body)
        age_limit = self.core.max_connection_age
        if age_limit is not None and time.monotonic() - self.opened > age_limit:
            msg = (
                f"Responses websocket connection limit reached ({_limit_text(age_limit)}). "
                "Create a new websocket connection to continue."
            )
            await self.error(ApiError(400, msg, code="websocket_connection_limit_reached"), record)
            await self.close(1000, "connection limit reached")
            return True
        admitted = self.lanes.admit(body, record)
        if isinstance(admitted, Refusal):
            await self.error(admitted.error, record, admitted.echo)
            return False
        if admitted.key is not None:
            self.core.stats.lane_event(self.id, lane=admitted.key)
        self.start_ready()
        return False

    async def fake_warmup(self, body: dict[str, Any], record: int) -> None:
        """A gateway's own answer to ``generate: false`` (`_gateway`): nothing goes upstream."""
        response_id, events = fake_warmup(body)
        self.core.stats.count(self.id, warmup=True)
        self.core.stats.update(record, status="completed", response_id=response_id)
        for event in events:
            await self.emit(event)

    def start_ready(self) -> None:
        """Start every waiting create whose lane and slot are free, each as its own task."""
        while not self.closing and (pending := self.lanes.next_ready()) is not None:
            self.core.stats.lane_event(self.id, in_flight=self.lanes.in_flight)
            task = asyncio.create_task(self.respond(pending))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def respond(self, pending: Pending) -> None:
        try:
            await self._respond(pending)
        except asyncio.CancelledError:  # the connection ended under the response
            self.core.engine.fail(pending.record, "disconnected")
            raise
        except Exception:  # the peer went away mid-stream
            self.core.engine.fail(pending.record, "disconnected")
        finally:
            self.lanes.release(pending)
            self.start_ready()

    async def _respond(self, pending: Pending) -> None:
        engine, body, echo = self.core.engine, pending.body, pending.echo
        wanted = body.get("previous_response_id")
        cached, owner, found = self.lanes.resolve(wanted)
        begun = validate(body, "websocket") or engine.begin(body, pending.record, self.id, cached)
        if isinstance(begun, ApiError):
            self.lanes.refused(pending, wanted, owner, found)
            await self.error(begun, pending.record, echo)
            return
        if found and owner != pending.key:
            self.core.stats.update(pending.record, fork=True)
            self.core.stats.lane_event(self.id, fork=True)
        self.lanes.started(pending)
        prod = engine.produce(begun)
        if prod.error is not None:
            fault = prod.error
            self.lanes.refused(pending, wanted, owner, found)
            engine.fail(begun.record, fault.code or fault.type)
            await self.emit(_tag(error_frame(fault), echo))
            return
        state = SteerState(echo=echo, hold=self.core.faults.take_steer_hold())
        self.steering.add(state)
        try:
            while True:
                entry = await self._run(pending, begun, prod, state, (wanted, owner, found))
                if entry is None or not (steers := state.take()):
                    return
                if not state.cut and waits_for_tools(entry.response.get("output") or ()):
                    # §2.3 step 4: the input waits for the client's explicit create.
                    stubs = required_input(entry.response.get("output") or ())
                    items = [item for steer in steers for item in steer.items]
                    self.parked[entry.id] = (pending.key, items)
                    state.acks.extend(pending_event(s.id, entry.id, stubs) for s in steers)
                    return
                successor = self._successor(pending, entry, steers, state)
                if successor is None:
                    return
                begun, prod = successor
                wanted, owner, found = entry.id, pending.key, True
        finally:
            self.steering.discard(state)
            while state.acks:  # after the lane's last terminal event
                await self.emit(_tag(state.acks.popleft(), echo))

    def _successor(
        self, pending: Pending, entry: StoredResponse, steers: list[Steer], state: SteerState
    ) -> tuple[Exchange, Production] | None:
        """The response the server starts by itself after a steered one (§2.3 step 3):
        the same settings, chained on ``entry``, the queued input as its new items."""
        engine = self.core.engine
        body = {
            **pending.body,
            "previous_response_id": entry.id,
            "input": [item for steer in steers for item in steer.items],
        }
        body.pop("generate", None)
        record = engine.record("websocket", self.id, body, 0)
        self.core.stats.update(record, successor_of=entry.id)
        begun = engine.begin(body, record, self.id, entry)
        message = begun.message if isinstance(begun, ApiError) else ""
        prod = None if isinstance(begun, ApiError) else engine.produce(begun)
        if prod is None or prod.error is not None or prod.rendered is None:
            engine.fail(record, "successor_creation_failed")
            message = message or "The successor response could not start."
            state.acks.extend(
                failed_event(entry.id, s.items, "successor_creation_failed", message, s.id)
                for s in steers
            )
            return None
        assert not isinstance(begun, ApiError)
        return begun, prod

    async def _run(
        self,
        pending: Pending,
        begun: Exchange,
        prod: Production,
        state: SteerState,
        referenced: tuple[Any, Any, bool],
    ) -> StoredResponse | None:
        """Stream one response of the lane; the entry it committed (None: failed)."""
        engine, echo = self.core.engine, pending.echo
        steerable_run = prod.blocks is None
        if prod.blocks is not None:
            status, response = replay_outcome(prod.blocks)
            payloads: Iterable[Payload] = [b for b in prod.blocks if b.data not in (None, "[DONE]")]
        else:
            assert prod.rendered is not None
            status, response = prod.rendered.status, prod.rendered.response
            payloads = steerable(prod.rendered.events, state)  # built while sending
        committed: list[StoredResponse] = []

        def commit() -> None:
            final_status, final = state.outcome or (status, response)
            entry = engine.finish(begun, final_status, final)
            if entry is not None:
                self.lanes.completed(pending, entry)
                committed.append(entry)
            else:
                self.lanes.failed(pending, *referenced)

        async def send(payload: Payload) -> None:
            await self.queue(_tag(payload, echo))
            if (
                state.hold
                and isinstance(payload, dict)
                and str(payload.get("type")).endswith(".delta")
            ):
                state.hold, wait = None, state.hold
                await self.flush()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await state.arrived.wait()

        config = self.core.stream_config(prod.faults, prod.first_token_delay)
        pump = Pump(send, config, commit, flush=self.flush)
        state.cut, state.outcome = False, None
        ok = await pump.run(payloads)
        # No await from here on: a steer naming this response is now refused as ended.
        if state.response_id is not None:
            self.ended[state.response_id] = echo
        state.response_id = None
        if not ok:
            engine.fail(begun.record, "dropped")
            self.inbox.put_nowait(("abort",))
            return None
        pump.commit()
        if not steerable_run:
            return None
        return committed[-1] if committed else None


def _tag(payload: Payload, stream_id: str | None) -> Payload:
    """The frame with the lane's `stream_id` (every event of a named lane carries it)."""
    if stream_id is None:
        return payload
    if isinstance(payload, SseBlock):
        if payload.data is None:
            return payload
        try:
            event = json.loads(payload.data)
        except ValueError:
            return payload
        if not isinstance(event, dict):
            return payload
        event["stream_id"] = stream_id
        return SseBlock(payload.raw, dumps(event), payload.type)
    payload["stream_id"] = stream_id
    return payload


def _parse(text: str | None) -> dict[str, Any] | ApiError:
    if text is None:
        return ApiError(
            400, "Binary frames are not supported; send JSON text frames.", code="invalid_json"
        )
    try:
        body = json.loads(text)
    except ValueError:
        return ApiError(400, "The message is not valid JSON.", code="invalid_json")
    if not isinstance(body, dict):
        return ApiError(400, "The message must be a JSON object.", code="invalid_json")
    if body.get("type") not in ("response.create", "response.steer"):
        msg = (
            f"Invalid value: '{body.get('type')}'. Supported values are: 'response.create' "
            "and 'response.steer'."
        )
        return ApiError(400, msg, code="invalid_value", param="type")
    return body
