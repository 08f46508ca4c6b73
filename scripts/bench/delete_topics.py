"""Deletes the topics whose names start with one of the given prefixes: a benchmark's own
topics, so that their records (gigabytes after a million-record run) do not stay on the local
broker. Topics of other prefixes are not touched.

    python3 scripts/bench/delete_topics.py BROKERS PREFIX [PREFIX...]"""
import sys

from confluent_kafka.admin import AdminClient

brokers, prefixes = sys.argv[1], tuple(sys.argv[2:])
if not prefixes or any(len(p) < 4 for p in prefixes):
    sys.exit("delete_topics: give prefixes of at least 4 characters")
admin = AdminClient({"bootstrap.servers": brokers})
topics = sorted(t for t in admin.list_topics(timeout=30).topics if t.startswith(prefixes))
if topics:
    for topic, done in admin.delete_topics(topics, operation_timeout=30).items():
        try:
            done.result()
        except Exception as e:  # reported, and the other topics still go
            print(f"delete_topics: {topic}: {e}", file=sys.stderr)
