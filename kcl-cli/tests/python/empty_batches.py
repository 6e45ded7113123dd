#!/usr/bin/env python3
# A MultiLang processor on the official PyPI amazon-kclpy library (v3
# interface): appends one line per processRecords to the file KCL_PY_OUT,
# "EMPTY <millisBehindLatest>" when the batch holds no records, else
# "RECORD <data>" per record; checkpoints after every batch with records,
# at shard end and on a shutdown request.

import os

from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor

OUT = os.environ["KCL_PY_OUT"]


def append(text):
    with open(OUT, "a") as f:
        f.write(text)


class EmptyBatchProcessor(processor.RecordProcessorBase):
    def initialize(self, initialize_input):
        pass

    def process_records(self, process_records_input):
        records = process_records_input.records
        if not records:
            append("EMPTY {}\n".format(process_records_input.millis_behind_latest))
            return
        append("".join("RECORD {}\n".format(r.binary_data.decode()) for r in records))
        last = records[-1]
        process_records_input.checkpointer.checkpoint(last.sequence_number, last.sub_sequence_number)

    def lease_lost(self, lease_lost_input):
        pass

    def shard_ended(self, shard_ended_input):
        shard_ended_input.checkpointer.checkpoint()

    def shutdown_requested(self, shutdown_requested_input):
        shutdown_requested_input.checkpointer.checkpoint()


if __name__ == "__main__":
    kcl.KCLProcess(EmptyBatchProcessor()).run()
