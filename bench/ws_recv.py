"""CPU per message of the sync WebSocket transport's `recv_text`, in process.

Not part of `make bench`: a quick check of the transport's own per-frame cost, with no
server and no protocol. 200,000 text frames of a typical delta event go through a socket
pair (a feeder thread writes them; its CPU is included) into `WebSocketConnection`.

    .venv/bin/python bench/ws_recv.py
"""

from __future__ import annotations

import socket
import threading
import time

import websocket
from websocket._abnf import ABNF

from llmkit.transports.websocket import WebSocketConnection

FRAMES = 200_000
PAYLOAD = (
    b'{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,'
    b'"content_index":0,"delta":" word","sequence_number":12}'
)


def main() -> None:
    frame = ABNF(1, 0, 0, 0, ABNF.OPCODE_TEXT, 0, PAYLOAD).format()
    ours, theirs = socket.socketpair()

    def feed() -> None:
        batch = frame * 1000
        for _ in range(FRAMES // 1000):
            theirs.sendall(batch)

    threading.Thread(target=feed, daemon=True).start()
    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
    ws.sock, ws.connected = ours, True
    connection = WebSocketConnection(ws, url="ws://127.0.0.1/", secrets=())
    started = time.process_time()
    for _ in range(FRAMES):
        connection.recv_text(5.0)
    elapsed = time.process_time() - started
    print(f"{elapsed / FRAMES * 1e6:.2f} µs of CPU per message")
    ours.close()
    theirs.close()


if __name__ == "__main__":
    main()
