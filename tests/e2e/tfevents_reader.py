#!/usr/bin/python3
"""An independent reader of TensorBoard event files, for the tests.

It shares no code with the server's writer (base/tfevents.cc): the messages are declared here
from TensorBoard's published event.proto and summary.proto (their field numbers) and parsed by
protobuf's own Python runtime; the records' checksums are checked with Google's CRC-32C module.
It reads a run's files as TensorBoard does: in name order; a record cut short at the end of a
file (a writer that crashed mid-record) ends that file quietly; a checksum that does not match
is an error; a SessionLog START at step s drops every value read so far at steps >= s (a run that
restarted from there).

    tfevents_reader.py RUN_DIR   # prints {"tag": {"step": value}} as JSON
"""
import json
import os
import struct
import sys

import crc32c
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SESSION_START = 1


def _messages():
    file = descriptor_pb2.FileDescriptorProto(name="tfevents_reader.proto", package="tbreader",
                                              syntax="proto3")
    f = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        m = file.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            field = m.field.add(name=field_name, number=number, type=kind,
                                label=f.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
        return m

    value = message("Value", [("node_name", 7, f.TYPE_STRING, None),
                              ("tag", 1, f.TYPE_STRING, None),
                              ("simple_value", 2, f.TYPE_FLOAT, None)])
    del value
    summary = message("Summary", [("value", 1, f.TYPE_MESSAGE, ".tbreader.Value")])
    summary.field[0].label = f.LABEL_REPEATED
    message("SessionLog", [("status", 1, f.TYPE_INT32, None),
                           ("checkpoint_path", 2, f.TYPE_STRING, None),
                           ("msg", 3, f.TYPE_STRING, None)])
    message("Event", [("wall_time", 1, f.TYPE_DOUBLE, None),
                      ("step", 2, f.TYPE_INT64, None),
                      ("file_version", 3, f.TYPE_STRING, None),
                      ("summary", 5, f.TYPE_MESSAGE, ".tbreader.Summary"),
                      ("session_log", 7, f.TYPE_MESSAGE, ".tbreader.SessionLog")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tbreader.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


Event = _messages()


def masked_crc(data):
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class DataLoss(Exception):
    pass


def read_records(path):
    """Yields each complete record's bytes; returns quietly at a record cut short."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        if len(data) - offset < 12:
            return
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        if header_crc != masked_crc(header):
            raise DataLoss(f"{path}: length checksum wrong at byte {offset}")
        end = offset + 12 + length + 4
        if end > len(data):
            return
        body = data[offset + 12:offset + 12 + length]
        (body_crc,) = struct.unpack("<I", data[end - 4:end])
        if body_crc != masked_crc(body):
            raise DataLoss(f"{path}: data checksum wrong at byte {offset}")
        yield body
        offset = end


def record(data):
    """data framed as a TFRecord (for tests that forge or damage a file)."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", masked_crc(data))


def read_events(path):
    for record in read_records(path):
        event = Event()
        event.ParseFromString(record)
        yield event


def event_files(run_dir):
    return sorted(os.path.join(run_dir, name) for name in os.listdir(run_dir)
                  if name.startswith("events.out.tfevents."))


def read_run(run_dir):
    """{tag: {step: value}} as TensorBoard would show the run."""
    scalars = {}
    for path in event_files(run_dir):
        for number, event in enumerate(read_events(path)):
            if number == 0 and event.file_version != "brain.Event:2":
                raise DataLoss(f"{path}: first event is not the file version: {event}")
            if event.HasField("session_log") and event.session_log.status == SESSION_START:
                for values in scalars.values():
                    for step in [s for s in values if s >= event.step]:
                        del values[step]
            if event.HasField("summary"):
                for value in event.summary.value:
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


if __name__ == "__main__":
    run = read_run(sys.argv[1])
    print(json.dumps({tag: {str(step): v for step, v in sorted(values.items())}
                      for tag, values in sorted(run.items())}))
