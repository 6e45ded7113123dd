"""A scripted MultiLang child for the daemon-side tests.

argv: MODE LOG. Every line received is appended to LOG verbatim; the
behaviour on each action depends on MODE. Pure stdlib."""
import json
import os
import signal
import sys
import time

mode, log = sys.argv[1], sys.argv[2]
last_seq = None


def send(obj):
    sys.stdout.write("\n" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def status(action):
    send({"action": "status", "responseFor": action})


def checkpoint(seq, sub=None):
    send({"action": "checkpoint", "sequenceNumber": seq, "subSequenceNumber": sub})
    reply = sys.stdin.readline()
    with open(log, "a") as f:
        f.write(reply)
    return json.loads(reply)


if mode == "ignore-eof":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

with open(log, "a") as f:
    f.write("pid %d pgid %d\n" % (os.getpid(), os.getpgid(0)))

while True:
    line = sys.stdin.readline()
    if not line:
        break
    with open(log, "a") as f:
        f.write(line)
    msg = json.loads(line)
    action = msg["action"]
    if action == "initialize":
        if mode == "stderr-partial":
            sys.stderr.write("first line\nno newline yet")
            sys.stderr.flush()
        if mode == "checkpoint-in-initialize":
            checkpoint(None)
        status(action)
        if mode == "chatty":
            # 2 MiB on stdout and on stderr, far past the pipe buffers,
            # before reading the next line: a daemon that only reads
            # after writing would deadlock on a large processRecords.
            for _ in range(32):
                sys.stdout.write("chatter " + "x" * 65536 + "\n")
                sys.stderr.write("noise " + "y" * 65536 + "\n")
            sys.stdout.flush()
            sys.stderr.flush()
            with open(log, "a") as f:
                f.write("chatter done\n")
        if mode == "close-stdin":
            # Close stdin but keep running: the daemon's next write fails.
            os.close(0)
            with open(log, "a") as f:
                f.write("stdin closed\n")
            while True:
                time.sleep(1)
    elif action == "processRecords":
        if mode == "crash-on-records":
            os._exit(3)
        if mode == "hang":
            time.sleep(3600)
        if mode == "wrong-status":
            status("initialize")
            continue
        last_seq = msg["records"][-1]["sequenceNumber"]
        print("stray text on stdout, as kclpy prints on some errors")
        sys.stdout.flush()
        checkpoint(None)
        checkpoint("not-a-number")
        status(action)
    elif action == "shardEnded":
        checkpoint(last_seq, 0)
        status(action)
    elif action == "shutdown":
        if msg.get("reason") in ("TERMINATE", "SHARD_END"):
            checkpoint(None)
        else:
            checkpoint(last_seq)
        status(action)
    elif action == "shutdownRequested":
        checkpoint(None)
        status(action)
    elif action == "leaseLost":
        checkpoint(None)
        status(action)
    else:
        status(action)

if mode == "ignore-eof":
    while True:
        time.sleep(1)
