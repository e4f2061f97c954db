"""The consumer loop on a real nats-server: decoding, dead letters, redelivery, duplicates."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from proto import codec, ids, streams, subjects
from proto.v1 import BY_NAME, CameraStatus, DeadLetter, FrameMeta
from proto.v1.frame import frame_headers, frame_meta_from_headers
from services.runtime import bus

GOLDEN = Path(__file__).resolve().parents[1] / "proto" / "golden"


async def make_stream(js, unique: str) -> streams.Stream:
    stream = streams.Stream(
        name=f"T_{unique}", subjects=(f"test.{unique}.>",), description="test", max_age_s=600, max_msg_size=1024**2
    )
    await bus.ensure_streams(js, [stream, streams.DEAD_LETTERS])
    return stream


def consumer_spec(unique: str, **overrides) -> streams.Consumer:
    return streams.Consumer(
        name=f"c-{unique}", stream=f"T_{unique}", filter_subjects=(f"test.{unique}.>",), **overrides
    )


def status(unique: str, n: int) -> CameraStatus:
    return CameraStatus(
        id=ids.event_id("cst", unique, n), camera_id=f"cam-{unique}", occurred_at=datetime.now(timezone.utc),
        state="online", fps_in=float(n),
    )


async def dead_letters(js, service: str, expected: int, timeout: float = 10.0) -> list[DeadLetter]:
    sub = await js.pull_subscribe(subjects.dlq(service), stream="DEAD_LETTERS")
    letters: list[DeadLetter] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(letters) < expected and asyncio.get_running_loop().time() < deadline:
        try:
            for msg in await sub.fetch(expected - len(letters), timeout=0.5):
                letters.append(codec.decode(msg.data, DeadLetter))
                await msg.ack()
        except Exception:
            continue
    await sub.unsubscribe()
    return letters


async def run_until(consumer: bus.Consumer, done: Callable[[], bool], timeout: float = 15.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done():
            if task.done():
                task.result()
            assert asyncio.get_running_loop().time() < deadline, "consumer did not finish in time"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_every_golden_sample_goes_through_the_runtime_unchanged(js, unique: str) -> None:
    await make_stream(js, unique)
    sent: dict[str, object] = {}
    for path in sorted(GOLDEN.rglob("*.json")):
        if path.parent.name not in BY_NAME:
            continue  # a request or reply of an endpoint (lookup_owner_*): not an event in a stream
        message = BY_NAME[path.parent.name]
        event = codec.decode(path.read_bytes(), message.type)
        subject = f"test.{unique}.{message.name}"
        if message.type is FrameMeta:
            await js.publish(subject, b"\xff\xd8\xff\xe0 jpeg bytes", headers=frame_headers(event))
        else:
            await bus.publish(js, subject, event)
        sent[event.id] = event

    def decode(msg):
        name = msg.subject.rsplit(".", 1)[1]
        if name == "frame_captured":
            return frame_meta_from_headers(msg.headers)
        return codec.decode(msg.data, BY_NAME[name].type)

    received: dict[str, object] = {}

    async def handle(event, msg) -> None:
        received[event.id] = event

    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=consumer_spec(unique), decode=decode, handle=handle)
    await run_until(consumer, lambda: len(received) == len(sent))
    assert received == sent
    assert all(type(received[key]) is type(value) for key, value in sent.items())


async def test_malformed_messages_go_to_the_dead_letters_and_consuming_goes_on(js, unique: str) -> None:
    stream = await make_stream(js, unique)
    subject = f"test.{unique}.status"
    good = [status(unique, n) for n in range(3)]
    valid = json.loads(codec.encode(good[0]))
    bad_payloads = {
        "not json": b"this is not json",
        "empty": b"",
        "wrong types": json.dumps({**valid, "id": "x-1", "fps_in": "fast"}).encode(),
        "missing fields": json.dumps({"id": "x-2", "camera_id": f"cam-{unique}"}).encode(),
        "oversize": json.dumps({**valid, "id": "x-3", "reason": "x" * 5000}).encode(),
    }
    await bus.publish(js, subject, good[0])
    for name, payload in bad_payloads.items():
        await js.publish(subject, payload, headers={"Nats-Msg-Id": f"{unique}-{name}", "Camera-Id": f"cam-{unique}"})
    for event in good[1:]:
        await bus.publish(js, subject, event)

    handled: list[CameraStatus] = []

    async def handle(event: CameraStatus, msg) -> None:
        handled.append(event)

    service = f"svc-{unique}"
    spec = consumer_spec(unique)
    consumer = bus.Consumer(
        js, service=service, consumer=spec, decode=bus.json_decoder(CameraStatus), handle=handle, max_payload=4096, batch=3,
    )
    await run_until(consumer, lambda: len(handled) == len(good))
    assert [event.id for event in handled] == [event.id for event in good]

    letters = await dead_letters(js, service, expected=len(bad_payloads))
    by_payload = {letter.headers["Nats-Msg-Id"].removeprefix(f"{unique}-"): letter for letter in letters}
    assert set(by_payload) == set(bad_payloads)
    assert by_payload["not json"].error == "decode" and "JSON" in by_payload["not json"].reason
    assert by_payload["empty"].error == "decode"
    assert by_payload["wrong types"].error == "invalid" and "$.fps_in" in by_payload["wrong types"].reason
    assert by_payload["missing fields"].error == "invalid" and "missing required field" in by_payload["missing fields"].reason
    assert by_payload["oversize"].error == "oversize" and "exceeds the limit of 4096" in by_payload["oversize"].reason
    for name, letter in by_payload.items():
        assert letter.payload == bad_payloads[name], name  # the original travels with the reason
        assert letter.stream == stream.name and letter.stream_seq is not None
        assert letter.camera_id == f"cam-{unique}" and letter.service == service and letter.subject == subject

    info = await js.consumer_info(stream.name, spec.name)
    assert info.num_ack_pending == 0 and info.num_pending == 0  # every message settled, none left hanging
    assert (await js.stream_info(stream.name)).state.messages == len(good) + len(bad_payloads)  # and none deleted


async def test_transient_failures_are_retried_then_dead_lettered(js, unique: str) -> None:
    await make_stream(js, unique)
    flaky, broken = status(unique, 1), status(unique, 2)
    subject = f"test.{unique}.status"
    await bus.publish(js, subject, flaky)
    await bus.publish(js, subject, broken)
    attempts: dict[str, int] = {flaky.id: 0, broken.id: 0}
    done: list[str] = []

    async def handle(event: CameraStatus, msg) -> None:
        attempts[event.id] += 1
        if event.id == broken.id or attempts[event.id] < 3:
            raise ConnectionError("database is restarting")
        done.append(event.id)

    service = f"svc-{unique}"
    consumer = bus.Consumer(
        js, service=service, consumer=consumer_spec(unique, max_deliver=4), decode=bus.json_decoder(CameraStatus),
        handle=handle, backoff=lambda n: 0.05,
    )
    letters: list[DeadLetter] = []

    await run_until(consumer, lambda: done == [flaky.id] and attempts[broken.id] == 4)
    letters = await dead_letters(js, service, expected=1)
    assert attempts == {flaky.id: 3, broken.id: 4}
    assert len(letters) == 1
    assert letters[0].error == "gave_up" and letters[0].num_delivered == 4
    assert "database is restarting" in letters[0].reason
    assert codec.decode(letters[0].payload, CameraStatus) == broken


async def test_handler_rejection_is_a_dead_letter_not_a_retry(js, unique: str) -> None:
    await make_stream(js, unique)
    event = status(unique, 1)
    await bus.publish(js, f"test.{unique}.status", event)
    calls = []

    async def handle(event: CameraStatus, msg) -> None:
        calls.append(event.id)
        raise bus.Invalid("camera is not in the scene configuration")

    service = f"svc-{unique}"
    consumer = bus.Consumer(js, service=service, consumer=consumer_spec(unique), decode=bus.json_decoder(CameraStatus), handle=handle)
    letters: list[DeadLetter] = []

    async def collect() -> None:
        letters.extend(await dead_letters(js, service, expected=1))

    await run_until(consumer, lambda: bool(calls))
    await collect()
    assert calls == [event.id]
    assert letters[0].error == "invalid" and "not in the scene configuration" in letters[0].reason


async def test_killed_consumer_messages_are_redelivered_and_ids_are_stored_once(js, unique: str, nats_url: str, tmp_path: Path) -> None:
    stream = await make_stream(js, unique)
    subject = f"test.{unique}.status"
    events = [status(unique, n) for n in range(20)]
    for event in events:
        await bus.publish(js, subject, event)
    spec = consumer_spec(unique, ack_wait_s=2.0, max_deliver=5)
    await bus.ensure_consumer(js, spec)

    handled_file = tmp_path / "handled"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("consumer_process.py")), nats_url, stream.name, spec.name,
         spec.filter_subjects[0], str(handled_file)],
    )
    try:
        for _ in range(200):
            if handled_file.exists() and len(handled_file.read_text().split()) >= 3:
                break
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # in the middle of its batch of 10
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    first = set(handled_file.read_text().split())
    assert 3 <= len(first) < len(events)

    second: dict[str, int] = {}

    async def handle(event: CameraStatus, msg) -> None:
        second[event.id] = msg.metadata.num_delivered

    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=spec, decode=bus.json_decoder(CameraStatus), handle=handle)
    everything = {event.id for event in events}
    await run_until(consumer, lambda: first | set(second) == everything, timeout=20)
    redelivered = {event_id for event_id, delivered in second.items() if delivered > 1}
    assert redelivered, "the killed consumer's unacknowledged batch was not redelivered"
    assert everything - first <= set(second)

    # A producer retrying after a crash republishes the same id: JetStream stores it once.
    before = (await js.stream_info(stream.name)).state.messages
    ack = await bus.publish(js, subject, events[0])
    assert ack.duplicate
    assert (await js.stream_info(stream.name)).state.messages == before == len(events)


async def test_frame_headers_are_checked() -> None:
    with pytest.raises(msgspec.ValidationError, match="Frame-Seq"):
        frame_meta_from_headers({"Nats-Msg-Id": "f", "Camera-Id": "cam-1", "Captured-At": "2026-11-20T07:45:12+07:00",
                                 "Width": "640", "Height": "480"})
    with pytest.raises(msgspec.ValidationError, match="frame size"):
        frame_meta_from_headers({"Nats-Msg-Id": "f", "Camera-Id": "cam-1", "Frame-Seq": "1",
                                 "Captured-At": "2026-11-20T07:45:12+07:00", "Width": "0", "Height": "480"})


async def test_stop_finishes_the_batch_in_hand_and_acks_it(nc, js, unique: str) -> None:
    stream = await make_stream(js, unique)
    for n in range(5):
        await bus.publish(js, f"test.{unique}.status", status(unique, n))
    stop = asyncio.Event()
    handled: list[str] = []

    async def handle(event: CameraStatus, msg) -> None:
        stop.set()  # SIGTERM arrives while the batch is being handled
        await asyncio.sleep(0.05)
        handled.append(event.id)

    spec = consumer_spec(unique)
    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=spec, decode=bus.json_decoder(CameraStatus), handle=handle, batch=5)
    await asyncio.wait_for(consumer.run(stop), 10)
    await nc.flush()  # acks are fire-and-forget: let the server have them before asking it
    info = await js.consumer_info(stream.name, spec.name)
    # Everything fetched was handled and acked; nothing more was fetched after the stop.
    assert handled and info.num_ack_pending == 0
    assert len(handled) + info.num_pending == 5


async def test_stream_provisioning_is_idempotent_and_applies_changes(js, unique: str) -> None:
    stream = await make_stream(js, unique)
    await bus.ensure_streams(js, [stream])  # every replica runs it at start
    longer = msgspec.structs.replace(stream, max_age_s=7200)
    await bus.ensure_streams(js, [longer])
    info = await js.stream_info(stream.name)
    assert info.config.max_age == 7200 and info.config.subjects == list(stream.subjects)


async def test_micro_batches_fill_up_to_the_batch_size_within_the_window(js, unique: str) -> None:
    await make_stream(js, unique)
    subject = f"test.{unique}.status"
    batches: list[int] = []

    async def handle_batch(items) -> None:
        batches.append(len(items))

    consumer = bus.Consumer(
        js, service=f"svc-{unique}", consumer=consumer_spec(unique), decode=bus.json_decoder(CameraStatus),
        handle_batch=handle_batch, batch=4, fetch_timeout_s=1.0, fill_window_s=0.5,
    )

    async def trickle() -> None:  # one message every 50 ms: a plain fetch would return them one by one
        for n in range(8):
            await bus.publish(js, subject, status(unique, n))
            await asyncio.sleep(0.05)

    producer = asyncio.create_task(trickle())
    await run_until(consumer, lambda: sum(batches) == 8)
    await producer
    assert batches == [4, 4]


async def test_a_lone_event_is_handled_without_waiting_for_a_full_batch(js, unique: str) -> None:
    await make_stream(js, unique)
    handled: list[float] = []
    loop = asyncio.get_running_loop()

    async def handle(event: CameraStatus, msg) -> None:
        handled.append(loop.time())

    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=consumer_spec(unique), decode=bus.json_decoder(CameraStatus),
                            handle=handle, batch=16, fetch_timeout_s=5.0)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.sleep(0.3)  # the consumer is waiting on an idle stream
    sent = loop.time()
    await bus.publish(js, f"test.{unique}.status", status(unique, 1))
    try:
        for _ in range(100):
            if handled:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    # Handled long before the 5 s fetch timeout: the batch of 16 was not waited for.
    assert handled and handled[0] - sent < 2.5


async def test_overlapping_batches_are_all_handled_in_order_and_acked(nc, js, unique: str) -> None:
    stream = await make_stream(js, unique)
    for n in range(12):
        await bus.publish(js, f"test.{unique}.status", status(unique, n))
    seen: list[float] = []

    async def handle_batch(items) -> None:
        await asyncio.sleep(0.05)
        seen.extend(event.fps_in for event, _ in items)

    spec = consumer_spec(unique)
    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=spec, decode=bus.json_decoder(CameraStatus),
                            handle_batch=handle_batch, batch=4, fill_window_s=0.05, overlap=True)
    await run_until(consumer, lambda: len(seen) == 12)
    assert seen == [float(n) for n in range(12)]
    await nc.flush()
    info = await js.consumer_info(stream.name, spec.name)
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_look_ahead_takes_what_is_already_waiting_beyond_the_batch(nc, js, unique: str) -> None:
    """A backlog of 30 with batch 4 and look_ahead 20: the first batch holds 20 (the handler
    sees the backlog, not only its oldest 4), the next the other 10; all acked."""
    stream = await make_stream(js, unique)
    for n in range(30):
        await bus.publish(js, f"test.{unique}.status", status(unique, n))
    batches: list[list[float]] = []

    async def handle_batch(items) -> None:
        batches.append([event.fps_in for event, _ in items])

    spec = consumer_spec(unique)
    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=spec, decode=bus.json_decoder(CameraStatus),
                            handle_batch=handle_batch, batch=4, fill_window_s=0.05, look_ahead=20)
    await run_until(consumer, lambda: sum(map(len, batches)) == 30)
    assert [len(b) for b in batches] == [20, 10]
    assert [n for b in batches for n in b] == [float(n) for n in range(30)]
    await nc.flush()
    info = await js.consumer_info(stream.name, spec.name)
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_keep_alive_holds_a_batch_longer_than_ack_wait_without_redelivery(nc, js, unique: str) -> None:
    """A 1 s ack_wait and a batch handled for 2 s: in-progress acks keep it; nothing comes twice."""
    stream = await make_stream(js, unique)
    for n in range(6):
        await bus.publish(js, f"test.{unique}.status", status(unique, n))
    seen: list[tuple[float, int]] = []

    async def handle_batch(items) -> None:
        if not seen:
            await asyncio.sleep(2.0)
        seen.extend((event.fps_in, msg.metadata.num_delivered) for event, msg in items)

    spec = consumer_spec(unique, ack_wait_s=1.0)
    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=spec, decode=bus.json_decoder(CameraStatus),
                            handle_batch=handle_batch, batch=3, fill_window_s=0.05, overlap=True, keep_alive=True,
                            fetch_timeout_s=0.2)
    await run_until(consumer, lambda: len(seen) >= 6)
    await asyncio.sleep(1.2)  # a redelivery, if any, would come within one ack_wait
    assert seen == [(float(n), 1) for n in range(6)]
    await nc.flush()
    info = await js.consumer_info(stream.name, spec.name)
    assert info.num_ack_pending == 0 and info.num_redelivered == 0 and not consumer._held


async def test_a_replica_started_after_a_kill_takes_the_killed_ones_messages_first(nc, js, unique: str) -> None:
    """A replica dies with messages in hand (fetched, never acked) and newer ones arrive: with
    leftovers_first the next replica handles everything in stream order, the dead one's first,
    instead of the newer ones first and the dead one's an ack_wait later."""
    stream = await make_stream(js, unique)
    subject = f"test.{unique}.status"
    for n in range(5):
        await bus.publish(js, subject, status(unique, n))
    spec = consumer_spec(unique, ack_wait_s=1.0, max_deliver=5)
    await bus.ensure_consumer(js, spec)
    dead = await js.pull_subscribe_bind(spec.name, stream=stream.name)
    assert len(await dead.fetch(3, timeout=2)) == 3  # in the dead replica's hand: 0, 1, 2
    await dead.unsubscribe()
    for n in range(5, 8):
        await bus.publish(js, subject, status(unique, n))
    order: list[float] = []

    async def handle(event: CameraStatus, msg) -> None:
        order.append(event.fps_in)

    consumer = bus.Consumer(js, service=f"svc-{unique}", consumer=spec, decode=bus.json_decoder(CameraStatus),
                            handle=handle, batch=4, leftovers_first=True, fetch_timeout_s=0.2)
    await run_until(consumer, lambda: len(order) >= 8)
    assert order == [float(n) for n in range(8)]
    await nc.flush()
    info = await js.consumer_info(stream.name, spec.name)
    assert info.num_ack_pending == 0 and info.num_pending == 0
