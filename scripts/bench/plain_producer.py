"""Baseline for the ingest benchmark: a plain librdkafka producer (confluent-kafka) sending
the lines of a file to one topic, keyed by line number, and waiting for every delivery.
With a fifth argument N, every record also carries N headers of the size the hub sends
(the hub's records carry 6). Prints JSON: records, seconds, records_per_second."""
import json
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

brokers, topic, path, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
n_headers = int(sys.argv[5]) if len(sys.argv) > 5 else 0
headers = [("bohai-header-%d" % i, b"resident-registrations") for i in range(n_headers)] or None
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
                producer.produce(topic, key=str(n), value=line.rstrip(b"\n"), headers=headers, on_delivery=on_delivery)
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
