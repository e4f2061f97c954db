"""A 3-node JetStream cluster on loopback (three nats-server processes, the accounts of
deploy/nats/accounts.conf, roadwatch's streams with 3 replicas), a steady flow of violations
through it (published with their ids as Nats-Msg-Id and retried until acknowledged, as the
services do; consumed by the runtime's pull loop, services/runtime/bus.py), and mid-run the node
that leads the stream is killed with kill -9, then started again on its store.

Measured: violations lost (published and acknowledged but never delivered), duplicated (kept
twice in the stream), delivered twice to the consumer (redeliveries, which consumers absorb by
id), the time without service (the longest gap between two publish acknowledgements, and
between two deliveries, around the kill), and how long the restarted node took to catch up.

    python chaos/cluster_run.py                  # 3000 violations at 50/s, the leader down 10 s (~90 s)
    python chaos/cluster_run.py --smoke          # 300 at 50/s, down 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec  # noqa: E402
import nats  # noqa: E402
import nats.errors  # noqa: E402

from bench.system.stack import print_table  # noqa: E402
from proto import streams, subjects  # noqa: E402
from services import localstack  # noqa: E402
from services.runtime import bus  # noqa: E402

CAMERA = "chaos-cluster"
NODES = ("n1", "n2", "n3")


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    n: int
    sent_at: float


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Cluster:
    work: Path
    passwords: dict[str, str] = field(default_factory=localstack.nats_passwords)
    ports: dict[str, int] = field(default_factory=dict)
    cluster_ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, object] = field(default_factory=dict)

    def start(self) -> None:
        for node in NODES:
            self.ports[node], self.cluster_ports[node] = localstack.free_port(), localstack.free_port()
        for node in NODES:
            self.start_node(node)

    def start_node(self, node: str) -> None:
        routes = [self.cluster_ports[other] for other in NODES if other != node]
        config = localstack.nats_cluster_config(self.work, node, self.cluster_ports[node], routes)
        self.processes[node] = localstack.start_nats(self.work / node, self.ports[node], passwords=self.passwords,
                                                     config=config, log_file=self.work / f"{node}.log")

    def kill9(self, node: str) -> None:
        process = self.processes[node]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def url(self, user: str = "portal") -> str:
        return ",".join(localstack.nats_url(self.ports[node], user, self.passwords) for node in NODES)

    def stop(self) -> None:
        for process in self.processes.values():
            localstack.stop_process(process)


async def wait_for_jetstream(js, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.account_info()
            return
        except Exception:  # noqa: BLE001 - no meta leader yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="rw-cluster-"))
    cluster = Cluster(work)
    failures: list[str] = []
    try:
        cluster.start()
        log(f"3 nats-servers on 127.0.0.1 ports {', '.join(str(cluster.ports[n]) for n in NODES)} (work {work})")

        async def quiet(exc) -> None:
            pass

        nc = await nats.connect(cluster.url().split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                error_cb=quiet, name="cluster-chaos")
        js = nc.jetstream(timeout=2)
        await wait_for_jetstream(js)
        deadline = time.monotonic() + 60
        while True:  # the meta group may still be electing when the first API call answers
            try:
                await bus.ensure_streams(js, streams.ALL, replicas=3)
                break
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        info = await js.stream_info("VIOLATIONS")
        log(f"streams created with 3 replicas; VIOLATIONS leader {info.cluster.leader}, "
            f"replicas {[r.name for r in info.cluster.replicas or []]}")

        subject = subjects.violation_detected(CAMERA, "red_light")
        consumer = streams.Consumer(name="cluster-check", stream="VIOLATIONS", filter_subjects=(subject,),
                                    ack_wait_s=5.0, max_deliver=20)
        delivered: collections.Counter[str] = collections.Counter()
        delivery_times: list[float] = []

        async def handle(probe: Probe, msg) -> None:
            delivered[probe.id] += 1
            delivery_times.append(time.monotonic())

        stop = asyncio.Event()
        loop = bus.Consumer(js, service="chaos", consumer=consumer, decode=bus.json_decoder(Probe), handle=handle,
                            batch=64, fetch_timeout_s=0.5)
        consuming = asyncio.create_task(loop.run(stop))

        acked: list[tuple[str, float]] = []
        attempts = collections.Counter()
        gap = 1 / args.rate

        async def produce() -> None:
            started = time.monotonic()
            for n in range(args.messages):
                due = started + n * gap
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                probe_id = f"cluster-{n:06d}"
                payload = msgspec.json.encode(Probe(id=probe_id, n=n, sent_at=time.time()))
                while True:
                    attempts[probe_id] += 1
                    try:
                        await js.publish(subject, payload, headers={bus.MSG_ID: probe_id}, timeout=2)
                        acked.append((probe_id, time.monotonic()))
                        break
                    except Exception:  # noqa: BLE001 - no leader / node gone: again, same id
                        await asyncio.sleep(0.1)

        producing = asyncio.create_task(produce())
        await asyncio.sleep(args.messages / args.rate * args.fault_at)
        leader = (await js.stream_info("VIOLATIONS")).cluster.leader
        log(f"kill -9 {leader} (the VIOLATIONS leader) after {len(acked)} acknowledged publishes")
        killed_at = time.monotonic()
        cluster.kill9(leader)
        await asyncio.sleep(args.down_s)
        cluster.start_node(leader)
        back_at = time.monotonic()
        log(f"{leader} started again on its store after {back_at - killed_at:.1f} s")
        await producing
        # Every violation delivered, then the restarted node current again.
        deadline = time.monotonic() + args.timeout
        while len(delivered) < args.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        caught_up_s = None
        while time.monotonic() < deadline:
            try:
                info = await js.stream_info("VIOLATIONS")
                replicas = info.cluster.replicas or []
                if len(replicas) == 2 and all(r.current and not r.lag for r in replicas):
                    caught_up_s = time.monotonic() - back_at
                    break
            except Exception:  # noqa: BLE001
                pass
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # late redeliveries, if any, arrive now
        stop.set()
        await consuming

        kept = (await js.stream_info("VIOLATIONS", subjects_filter=subject)).state.messages
        # The restarted node's own copy: make it the stream's leader (a step-down naming it as the
        # preferred peer; servers before 2.11 pick at random, hence the loop) and count there.
        restarted_kept = None
        for _ in range(10):
            try:
                info = await js.stream_info("VIOLATIONS", subjects_filter=subject)
                if info.cluster.leader == leader:
                    restarted_kept = info.state.messages
                    break
                before = info.cluster.leader
                await nc.request("$JS.API.STREAM.LEADER.STEPDOWN.VIOLATIONS",
                                 msgspec.json.encode({"placement": {"preferred": leader}}), timeout=5)
                for _ in range(50):  # the election: wait until someone else leads
                    await asyncio.sleep(0.2)
                    try:
                        now = (await js.stream_info("VIOLATIONS")).cluster.leader
                    except Exception:  # noqa: BLE001
                        continue
                    if now and now != before:
                        break
            except Exception:  # noqa: BLE001 - an election in progress
                await asyncio.sleep(1.0)
        await nc.close()

        published = {probe_id for probe_id, _ in acked}
        lost = sorted(published - set(delivered))
        duplicated = kept - len(published)
        redelivered = sum(n - 1 for n in delivered.values() if n > 1)
        ack_times = [t for _, t in acked]
        publish_gap = max((b - a for a, b in zip(ack_times, ack_times[1:]) if b >= killed_at - 1), default=0.0)
        delivery_times.sort()
        delivery_gap = max((b - a for a, b in zip(delivery_times, delivery_times[1:]) if b >= killed_at - 1),
                           default=0.0)
        retried = sum(1 for n in attempts.values() if n > 1)
        rows = [
            ["violations published (acknowledged)", args.messages, len(published), "ok" if len(published) == args.messages else "**MISMATCH**"],
            ["kept in the stream (R3)", args.messages, kept, "ok" if kept == args.messages else "**MISMATCH**"],
            ["lost (acknowledged, never delivered)", 0, len(lost), "ok" if not lost else "**MISMATCH**"],
            ["duplicated in the stream", 0, duplicated, "ok" if duplicated == 0 else "**MISMATCH**"],
            ["delivered twice (redelivery; consumers dedupe by id)", "-", redelivered, ""],
            ["publishes retried with the same id", "-", retried, ""],
            ["longest gap between publish acks (s)", f"{gap:.2f} normally", f"{publish_gap:.2f}", ""],
            ["longest gap between deliveries (s)", f"{gap:.2f} normally", f"{delivery_gap:.2f}", ""],
            ["node down (kill -9 to start again, s)", args.down_s, f"{back_at - killed_at:.1f}", ""],
            ["restarted node current again after (s)", "-", f"{caught_up_s:.1f}" if caught_up_s is not None else "never",
             "ok" if caught_up_s is not None else "**MISMATCH**"],
            [f"kept by the restarted node {leader}, as leader", args.messages,
             restarted_kept if restarted_kept is not None else "never leader",
             "ok" if restarted_kept == args.messages else "**MISMATCH**"],
        ]
        print()
        print_table(["cluster run", "expected", "found", ""], rows)
        failures = [f"{r[0]}: expected {r[1]}, found {r[2]}" for r in rows if r[3] == "**MISMATCH**"]
        if lost:
            failures.append(f"lost e.g. {lost[:3]}")
        run.result = {"published": len(published), "kept": kept, "lost": len(lost), "duplicated": duplicated,
                      "redelivered": redelivered, "publish_gap_s": publish_gap, "delivery_gap_s": delivery_gap,
                      "caught_up_s": caught_up_s, "restarted_kept": restarted_kept}
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("\nCLUSTER RUN FAILED:\n  " + "\n  ".join(failures), flush=True)
        return 1
    print("\nOK: nothing lost, nothing duplicated across the node's death and return", flush=True)
    return 0


run.result = {}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=50, help="violations per second")
    parser.add_argument("--down-s", type=float, default=10, help="seconds the killed node stays down")
    parser.add_argument("--fault-at", type=float, default=0.4, help="fraction of the run before the kill")
    parser.add_argument("--timeout", type=float, default=120, help="for delivery and catch-up after the run")
    parser.add_argument("--smoke", action="store_true", help="300 violations, the node down 3 s")
    parser.add_argument("--keep", action="store_true", help="keep the servers' folders and logs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.messages, args.down_s, args.timeout = 300, 3, 40
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
