"""Baseline for the ingest benchmark: a plain librdkafka producer (confluent-kafka) sending
the lines of a file to one topic, keyed by line number, and waiting for every delivery.

With a fifth argument N (1 to 6), every record also carries the first N of the six headers
the hub puts on a dataset record, with the same names and values of the same shape: dataset,
schema version, department, source, position (`<line>@file:<path>#<fingerprint>`, different
on every record, as the hub's) and ingest time. The hub's records carry all six; the issue
requires five of them (all but the position). Prints JSON: records, seconds,
records_per_second."""
import datetime
import json
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

brokers, topic, path, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
n_headers = int(sys.argv[5]) if len(sys.argv) > 5 else 0
if not 0 <= n_headers <= 6:
    sys.exit("plain_producer: from 0 to 6 headers")
# The hub's header names and values of the same shape (hub/src/pipeline/ingest.rs).
stream = "file:" + path + "#" + "0" * 64
now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
fixed = [("bohai-dataset", b"resident-registrations"), ("bohai-schema-version", b"1"),
         ("bohai-department", b"public-security"), ("bohai-source", b"bench")]
# Without the position, every record's headers are the same list; with it, one is made per
# record (the position differs on each).
if n_headers == 6:
    def headers_of(n):
        return fixed + [("bohai-position", f"{n}@{stream}".encode()), ("bohai-ingest-time", now.encode())]
else:
    same = (fixed + [("bohai-ingest-time", now.encode())])[:n_headers] or None
    def headers_of(_n):
        return same
admin = AdminClient({"bootstrap.servers": brokers})  # kept alive until the topic exists
for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
    f.result()
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20,
                     "queue.buffering.max.messages": 1000000})
failed = []
def on_delivery(err, _msg):
    if err is not None:
        failed.append(err)
start = time.monotonic()
n = 0
with open(path, "rb") as lines:
    for line in lines:
        while True:
            try:
                producer.produce(topic, key=str(n), value=line.rstrip(b"\n"), headers=headers_of(n), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 10000 == 0:
            producer.poll(0)
producer.flush()
seconds = time.monotonic() - start
if failed:
    sys.exit(f"{len(failed)} deliveries failed, first: {failed[0]}")
print(json.dumps({"records": n, "seconds": round(seconds, 3), "records_per_second": round(n / seconds)}))
