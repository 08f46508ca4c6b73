"""Deletes the local broker's topics whose names start with one of the given prefixes and
that nobody has written to for a while: the topics earlier test runs left behind (every test
makes topics of its own, with random names, and does not delete them).

    python3 prune_topics.py BROKERS DATA_DIR IDLE_SECONDS PREFIX [PREFIX...]

A topic is idle when, in every one of its partition folders under DATA_DIR (the broker's
log.dirs), the segment files (*.log) and partition.metadata (written when the topic was made)
were last modified more than IDLE_SECONDS ago. A test run still going never leaves its
topics idle that long, so concurrent runs keep theirs. A topic with a partition folder
missing here (another broker's, say) is left alone. Prints how many it deleted."""
import os
import sys
import time

from confluent_kafka.admin import AdminClient

brokers, data_dir, idle = sys.argv[1], sys.argv[2], float(sys.argv[3])
prefixes = tuple(sys.argv[4:])
if not prefixes or any(len(p) < 4 for p in prefixes):
    sys.exit("prune_topics: give prefixes of at least 4 characters")
admin = AdminClient({"bootstrap.servers": brokers})
metadata = admin.list_topics(timeout=30)
cutoff = time.time() - idle


def last_written(topic, partitions):
    """The newest modification time of the topic's segments, or None when a folder is missing."""
    newest = 0.0
    for p in partitions:
        folder = os.path.join(data_dir, f"{topic}-{p}")
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        for name in names:
            if name.endswith(".log") or name == "partition.metadata":
                try:
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
                except OSError:  # a segment deleted meanwhile: the topic is in use
                    return None
    return newest


stale = []
for name, topic in metadata.topics.items():
    if not name.startswith(prefixes) or topic.error is not None or not topic.partitions:
        continue
    written = last_written(name, topic.partitions)
    if written is not None and written < cutoff:
        stale.append(name)
deleted = 0
# In slices, so that the shared broker keeps answering other clients meanwhile.
for i in range(0, len(stale), 100):
    for name, done in admin.delete_topics(stale[i:i + 100], operation_timeout=60).items():
        try:
            done.result()
            deleted += 1
        except Exception as e:  # reported; the others still go
            print(f"prune_topics: {name}: {e}", file=sys.stderr)
print(deleted)
