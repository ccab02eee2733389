"""The CSV trace reader: plain request lists, any column order, the forms other tools write, and a one-line error
naming the line and the column for every malformed row."""

from __future__ import annotations

import numpy as np
import pytest

from envs.trace.formats import read_csv, write_csv
from envs.trace.record import Op, Trace, TraceError


def test_a_plain_request_list_is_a_trace(tmp_path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text("tensor_id,size,op\n7,100,read\n9,50,WRITE\n7,100,0\n9,50,free\n")
    trace = read_csv(path)
    want = Trace.from_requests([7, 9, 7, 9], [100, 50, 100, 50], ["read", "write", "read", "free"])
    assert trace.access_hash == want.access_hash
    np.testing.assert_array_equal(trace.op, [Op.READ, Op.WRITE, Op.READ, Op.FREE])
    np.testing.assert_array_equal(trace.op_index, np.arange(4))


def test_columns_in_any_order_quoted_fields_and_crlf(tmp_path, small_serve_trace: Trace) -> None:
    plain = write_csv(small_serve_trace, tmp_path / "plain.csv").read_text().splitlines()
    meta, header, rows = plain[0], plain[1].split(","), [r.split(",") for r in plain[2:]]
    order = list(reversed(range(len(header))))
    lines = [",".join(f'"{header[i]}"' for i in order)] + [",".join(f'"{r[i]}"' for i in order) for r in rows]
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_bytes(("\r\n".join([meta, *lines]) + "\r\n\r\n").encode())
    assert read_csv(shuffled).content_hash == small_serve_trace.content_hash


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("tensor_id,size,op\n1,8,read\n2,x8,read\n", r":3: size 'x8' is not an integer"),
        ("tensor_id,size,op\n1,8,read\n2,8,eat\n", r":3: bad op 'eat' \(valid: read, write, free\)"),
        ("tensor_id,size,op\n1,8,read\n2,8\n", r":3: expected 3 fields, got 2"),
        ("tensor_id,size,op\n1,8,read,4\n", r":2: expected 3 fields, got 4"),
        ("tensor_id,size,op\n1,99999999999999999999,read\n", r"does not fit in a 64-bit integer"),
        ("tensor_id,size,op\n1,,read\n", r"size '' is not an integer"),
        ("tensor_id,size,op\n1,8,7\n", r"bad op '7'"),
        ("tensor_id,size\n1,8\n", r"bad header \(missing op\)"),
        ("tensor_id,size,op,colour\n1,8,read,red\n", r"unknown column\(s\) 'colour'"),
        ("tensor_id,size,op,op\n1,8,read,read\n", r"a column named twice"),
        ("# meta: {nope\ntensor_id,size,op\n", r":1: metadata line is not JSON"),
        ("tensor_id,size,op\n1,-8,read\n", r"size"),
    ],
)
def test_every_malformed_row_gets_one_line(tmp_path, body: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(TraceError, match=match) as err:
        read_csv(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_binary_junk_and_the_row_limit(tmp_path) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"tensor_id,size,op\n1,8,read\n" + bytes(range(256)))
    with pytest.raises(TraceError, match=r":3: "):
        read_csv(junk)
    header = tmp_path / "header.csv"
    header.write_bytes(b"\xff\xfe\x00t\x00\n")
    with pytest.raises(TraceError, match="not UTF-8"):
        read_csv(header)
    many = tmp_path / "many.csv"
    many.write_text("tensor_id,size,op\n" + "1,8,read\n" * 11)
    assert len(read_csv(many, max_accesses=11)) == 11
    with pytest.raises(TraceError, match="more than 10 accesses"):
        read_csv(many, max_accesses=10)
