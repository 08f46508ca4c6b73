"""Reads back records with headers from a Kafka-API broker: produces N records of SIZE bytes
with H headers each to a new topic (2 partitions), then times consuming them all.

    python3 scripts/bench/headers_readback.py TOPIC N SIZE H [BROKERS]

Used to find why tansu 0.6.0 with SQLite storage slowed down: without an index on its
`header` table, 5,000 records with 8 headers took 27 s to read back; with the index that
scripts/stack adds, 40,000 took 3 s."""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

topic, n, size, n_headers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
brokers = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1:19092"
admin = AdminClient({"bootstrap.servers": brokers})
for f in admin.create_topics([NewTopic(topic, 2, 1)]).values():
    f.result()
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
payload = b"x" * size
headers = [("bohai-h%d" % j, b"value-%d" % j) for j in range(n_headers)] or None
start = time.monotonic()
for i in range(n):
    while True:
        try:
            producer.produce(topic, key=str(i), value=payload, headers=headers)
            break
        except BufferError:
            producer.poll(0.1)
producer.flush()
print("produced", n, round(time.monotonic() - start, 2), "s")
consumer = Consumer({"bootstrap.servers": brokers, "group.id": "g" + topic,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
consumer.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
start = time.monotonic()
got = 0
while got < n and time.monotonic() - start < 120:
    got += len(consumer.consume(10000, 1.0))
print("consumed", got, round(time.monotonic() - start, 2), "s")
