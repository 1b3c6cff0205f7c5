#!/usr/bin/env python3
"""Helpers of scripts/bench-consumer.sh (not meant to be run by hand, but it can be).

  produce     preloads a topic with IssueRequested messages for distinct users, as fast as
              librdkafka goes (payloads are built before the clock starts); optionally freezes a
              pid (SIGSTOP) right before; prints one JSON line
  count       reads a topic back: messages, distinct keys, offset gaps (and what ListOffsets
              claims); prints one JSON line
  wait        polls MySQL until a coupon holds N issued rows; optionally sends a signal to a pid
              right after its clock starts (SIGCONT to a stopped consumer); prints one JSON line
  ceiling     the raw MySQL insert ceiling: coupon_user rows for a coupon in transactions shaped
              like the consumer's, statements built before the clock starts; prints one JSON line

MySQL settings come from the COUPON__MYSQL__* variables (as scripts/stack.sh exports them).
Needs confluent-kafka (produce, watermarks) and PyMySQL (wait, ceiling).
"""

import argparse
import json
import os
import signal
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone


def out(obj):
    print(json.dumps(obj), flush=True)


def uuid7():
    """A UUIDv7 (RFC 9562), as issuer-api's RequestId::generate makes them: 48 bits of Unix
    milliseconds first, so ids of one burst sort together in the unique indexes."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


# ------------------------------------------------------------------------------------------
# Kafka
# ------------------------------------------------------------------------------------------


def cmd_produce(a):
    from confluent_kafka import Producer

    requested_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The exact shape issuer-api publishes: IssueRequested v1, key = user id, header
    # schema-version: 1 (crates/domain/src/event.rs, crates/messaging/src/publisher.rs).
    messages = []
    for i in range(a.first, a.first + a.count):
        user = f"{a.prefix}{i}"
        payload = (
            '{"version":1,"requestId":"%s","couponId":%d,"userId":"%s","requestedAt":"%s"}'
            % (uuid7(), a.coupon, user, requested_at)
        ).encode()
        messages.append((user.encode(), payload))
    headers = [("schema-version", b"1")]

    producer = Producer(
        {
            "bootstrap.servers": a.bootstrap,
            "client.id": "couponrush-bench-preload",
            "acks": "1",
            "enable.idempotence": False,
            "linger.ms": a.linger_ms,
            "batch.num.messages": 100000,
            "batch.size": 4 * 1024 * 1024,
            "message.max.bytes": 8 * 1024 * 1024,
            "queue.buffering.max.messages": 2000000,
            "queue.buffering.max.kbytes": 2097151,
            "compression.type": "none",
        }
    )
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(str(err))

    # Metadata first, so connecting is not part of the measured time.
    producer.list_topics(a.topic, timeout=10)
    if a.stop_pid:
        # Freeze the consumer only now: its session must not time out while payloads are built.
        os.kill(a.stop_pid, signal.SIGSTOP)
    started = time.monotonic()
    for key, payload in messages:
        while True:
            try:
                producer.produce(a.topic, payload, key, headers=headers, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.monotonic() - started
    out(
        {
            "sent": a.count - remaining - len(failed),
            "failed": len(failed) + remaining,
            "first_error": failed[0] if failed else None,
            "seconds": round(seconds, 3),
            "rate": round(a.count / seconds) if seconds > 0 else 0,
            "bytes": sum(len(p) + len(k) for k, p in messages),
        }
    )
    return 0 if not failed and remaining == 0 else 1


def cmd_count(a):
    """Counts what the topic holds by reading every partition from its start to its end (and the
    distinct keys), next to what ListOffsets says. tansu 0.6.0 (memory storage) answers
    ListOffsets(latest) with the last record batch's base offset + 1, not the log end, so its high
    watermarks undercount a topic written in big batches: only reading back is proof."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": "couponrush-bench-count",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(a.topic, timeout=10).topics.get(a.topic)
        if meta is None or meta.error is not None:
            out({"error": f"topic {a.topic} unknown: {meta.error if meta else 'absent'}"})
            return 1
        parts = sorted(meta.partitions)
        high = {}
        for p in parts:
            high[p] = consumer.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1]
        consumer.assign([TopicPartition(a.topic, p, 0) for p in parts])
        pending = set(parts)
        count = {p: 0 for p in parts}
        last = {p: -1 for p in parts}
        gaps = 0
        keys = set()
        deadline = time.monotonic() + a.timeout
        while pending and time.monotonic() < deadline:
            for m in consumer.consume(10000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    out({"error": str(err)})
                    return 1
                p = m.partition()
                if m.offset() != last[p] + 1:
                    gaps += 1
                last[p] = m.offset()
                count[p] += 1
                if a.keys:
                    keys.add(m.key())
        out(
            {
                "messages": sum(count.values()),
                "distinct_keys": len(keys) if a.keys else None,
                "offset_gaps": gaps,
                "complete": not pending,
                "per_partition": count,
                "list_offsets_high_sum": sum(high.values()),
            }
        )
        return 0 if not pending else 1
    finally:
        consumer.close()


# ------------------------------------------------------------------------------------------
# MySQL
# ------------------------------------------------------------------------------------------


def connect(autocommit=True):
    import pymysql

    env = os.environ
    return pymysql.connect(
        host=env.get("COUPON__MYSQL__HOST", "127.0.0.1"),
        port=int(env.get("COUPON__MYSQL__PORT", "3306")),
        user=env.get("COUPON__MYSQL__USER", "root"),
        password=env.get("COUPON__MYSQL__PASSWORD", ""),
        database=env["COUPON__MYSQL__DATABASE"],
        autocommit=autocommit,
        charset="utf8mb4",
    )


def cmd_wait(a):
    """Rows issued = total_quantity - available_quantity: the consumer changes both in the same
    transaction, so every committed snapshot has available = total - COUNT(*) (checked at the
    end). Polling the coupon row by primary key costs MariaDB next to nothing, unlike a COUNT(*)
    over a growing table every 50 ms; --count polls COUNT(*) instead."""
    conn = connect()
    cur = conn.cursor()
    cur.execute("SELECT total_quantity FROM coupon WHERE id = %s", (a.coupon,))
    total = cur.fetchone()[0]
    if a.count:
        sql, args = "SELECT COUNT(*) FROM coupon_user WHERE coupon_id = %s", (a.coupon,)
    else:
        sql, args = "SELECT %s - available_quantity FROM coupon WHERE id = %s", (total, a.coupon)

    def rows():
        cur.execute(sql, args)
        return int(cur.fetchone()[0])

    base = rows()
    # Clock zero: --t0-ms (the shell's time of starting the process), or now.
    if a.signal_pid:
        t0 = time.time()
        os.kill(a.signal_pid, getattr(signal, "SIG" + a.signal))
    else:
        t0 = a.t0_ms / 1000 if a.t0_ms else time.time()
    deadline = time.time() + a.timeout
    first = None  # seconds after t0 when a row beyond `base` was first seen
    timeline = []
    last = base
    while True:
        n = rows()
        now = time.time()
        if n != last:
            timeline.append([round(now - t0, 3), n])
            last = n
        if first is None and n > base:
            first = now - t0
        if n >= a.target:
            done = now - t0
            break
        if now > deadline:
            out({"reached": False, "rows": n, "base": base, "target": a.target,
                 "first_s": first, "timeline": timeline})
            return 1
        time.sleep(a.poll_ms / 1000)
    cur.execute("SELECT COUNT(*) FROM coupon_user WHERE coupon_id = %s", (a.coupon,))
    counted = int(cur.fetchone()[0])
    new = a.target - base
    after_first = done - first if first is not None else None
    out(
        {
            "reached": True,
            "base": base,
            "rows": n,
            "count_star": counted,
            "target": a.target,
            "total_s": round(done, 3),
            "first_s": round(first, 3) if first is not None else None,
            "after_first_s": round(after_first, 3) if after_first is not None else None,
            "rate_total": round(new / done) if done > 0 else 0,
            "rate_after_first": round(new / after_first) if after_first else 0,
            "timeline": timeline,
        }
    )
    return 0


def cmd_ceiling(a):
    """coupon_user rows for a fresh coupon, a.per_stmt rows per INSERT IGNORE, one transaction per
    statement shaped like the consumer's batch: (full, log: log the attempts,) lock the coupon row,
    (full, select: look the users up,) insert, decrement the stock, commit."""
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SELECT expiry_days FROM coupon WHERE id = %s", (a.coupon,))
    expiry = cur.fetchone()[0]
    conn.commit()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    issued = now.strftime("'%Y-%m-%d %H:%M:%S.%f'")[:-4] + "'"
    expires = (now + timedelta(days=expiry)).strftime("'%Y-%m-%d %H:%M:%S.%f'")[:-4] + "'"
    c = a.coupon
    txns = []
    for start in range(0, a.rows, a.per_stmt):
        batch = [(f"{a.prefix}{i}", str(uuid7())) for i in range(start, min(a.rows, start + a.per_stmt))]
        stmts = [f"SELECT available_quantity, expiry_days FROM coupon WHERE id = {c} FOR UPDATE"]
        if a.mode in ("full", "log"):
            stmts.insert(0, "INSERT IGNORE INTO event_participation_log "
                         "(coupon_id, user_id, outcome, request_id, occurred_at) VALUES "
                         + ",".join(f"({c},'{u}','ACCEPTED','{r}',{issued})" for u, r in batch))
        if a.mode in ("full", "select"):
            stmts.append(f"SELECT user_id, issued_at FROM coupon_user WHERE coupon_id = {c} AND user_id IN ("
                         + ",".join(f"'{u}'" for u, _ in batch) + ")")
        stmts.append("INSERT IGNORE INTO coupon_user "
                     "(coupon_id, user_id, request_id, status, issued_at, expires_at) VALUES "
                     + ",".join(f"({c},'{u}','{r}','ACTIVE',{issued},{expires})" for u, r in batch))
        stmts.append(f"UPDATE coupon SET available_quantity = available_quantity - {len(batch)} "
                     f"WHERE id = {c} AND available_quantity >= {len(batch)}")
        txns.append(stmts)
    started = time.monotonic()
    inserted = 0
    for stmts in txns:
        conn.begin()
        for s in stmts:
            n = cur.execute(s)
            if s.startswith("INSERT IGNORE INTO coupon_user"):
                inserted += n
            elif s.startswith("SELECT"):
                cur.fetchall()
        conn.commit()
    seconds = time.monotonic() - started
    out({"mode": a.mode, "rows": inserted, "transactions": len(txns), "seconds": round(seconds, 3),
         "rate": round(inserted / seconds) if seconds > 0 else 0})
    return 0 if inserted == a.rows else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("produce")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--coupon", type=int, required=True)
    s.add_argument("--prefix", required=True, help="user ids are PREFIX<n>")
    s.add_argument("--first", type=int, default=0)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--linger-ms", type=int, default=20)
    s.add_argument("--stop-pid", type=int, default=0, help="SIGSTOP this pid right before producing")
    s = sub.add_parser("count")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--keys", action="store_true", help="also count distinct keys")
    s.add_argument("--timeout", type=float, default=60)
    s = sub.add_parser("wait")
    s.add_argument("--coupon", type=int, required=True)
    s.add_argument("--target", type=int, required=True)
    s.add_argument("--poll-ms", type=int, default=50)
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--t0-ms", type=int, default=0, help="epoch ms of clock zero (default: now)")
    s.add_argument("--signal-pid", type=int, default=0, help="send --signal to this pid at clock zero")
    s.add_argument("--signal", default="CONT")
    s.add_argument("--count", action="store_true", help="poll COUNT(*) instead of the stock")
    s = sub.add_parser("ceiling")
    s.add_argument("--coupon", type=int, required=True)
    s.add_argument("--rows", type=int, required=True)
    s.add_argument("--per-stmt", type=int, default=500)
    s.add_argument("--prefix", required=True)
    s.add_argument("--mode", choices=["plain", "full", "log", "select"], default="plain",
                   help="plain: coupon_user only; full: the consumer's SQL; log / select: plain plus "
                   "only the participation-log INSERT / only the existing-users SELECT")
    a = p.parse_args()
    return {"produce": cmd_produce, "count": cmd_count, "wait": cmd_wait,
            "ceiling": cmd_ceiling}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
