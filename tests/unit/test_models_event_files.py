"""Event files as users have them: gzip, exports with other columns and words, and clear errors."""

import gzip
from datetime import UTC, datetime

import pytest

from models.data import parse_events, read_events
from models.event_files import DataError, parse_event_table, parse_input_format, read_event_table
from schemas.events import EventType

SESSION_TSV = b"SessionId\tItemId\tTime\n1\ta\t10\n1\tb\t20\n2\tc\t15\n"
EXPORT = (
    b"event_time,event_type,product_id,category_code,user_id,user_session\n"
    b"2019-10-01 00:00:00 UTC,view,44600062,,541312140,s-1\n"
    b'2019-10-01 00:00:05 UTC,purchase,3900821,"a,b",541312140,s-1\n'
    b"2019-10-01 00:01:00 UTC,cart,17200506,,554748717,\n"
)


def test_a_gzip_file_reads_as_its_content_whatever_its_name(tmp_path):
    plain, packed = tmp_path / "events.tsv", tmp_path / "events.bin"
    plain.write_bytes(SESSION_TSV)
    packed.write_bytes(gzip.compress(SESSION_TSV))
    a, b = read_events(plain), read_events(packed)
    assert a.items.tolist() == b.items.tolist() == ["a", "b", "c"]
    assert a.offsets.tolist() == b.offsets.tolist() and a.fingerprint == b.fingerprint


def test_a_rees46_export_is_recognised_by_its_header():
    table = parse_event_table(EXPORT)
    assert table.items == ["44600062", "3900821", "17200506"]
    assert table.event_types == [EventType.CLICK, EventType.BUY, EventType.CART]
    assert (
        table.times[0] == datetime(2019, 10, 1, tzinfo=UTC).timestamp()
        and table.times[1] - table.times[0] == 5
    )
    assert table.users == ["541312140", "541312140", "554748717"]
    assert table.session_keys() == ["s-1", "s-1", "554748717"]  # an empty session is the user's


def test_other_exports_are_read_through_a_column_mapping_and_extra_words():
    data = b"visitor;ts;what;sku\n".replace(b";", b",") + b"v1,100,show,i1\nv1,160,order,i2\n"
    input_format = parse_input_format("session=visitor,item=sku,time=ts,type=what", "show=click,order=buy")
    log = parse_events(data, input_format)
    assert log.items.tolist() == ["i1", "i2"] and log.event_types.tolist() == [EventType.CLICK, EventType.BUY]


@pytest.mark.parametrize(
    ("columns", "words", "message"),
    [
        ("session=a,item=b", None, "time"),
        ("session=a,item=b,time=c,colour=d", None, "unknown key 'colour'"),
        ("session=a,itemb,time=c", None, "KEY=VALUE"),
        (None, "refund=return", "click, cart or buy"),
    ],
)
def test_a_bad_mapping_is_refused_with_what_is_wrong(columns, words, message):
    with pytest.raises(ValueError, match=message):
        parse_input_format(columns, words)


def test_a_binary_file_is_reported_with_its_name_and_the_expected_columns(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x80\x04\x95 pickled")
    with pytest.raises(DataError) as error:
        read_event_table(path)
    message = str(error.value)
    assert (
        str(path) in message and "not a UTF-8 text file" in message and "SessionId, ItemId, Time" in message
    )


def test_a_damaged_gzip_file_is_reported_with_its_name(tmp_path):
    path = tmp_path / "train.tsv.gz"
    path.write_bytes(gzip.compress(SESSION_TSV)[:20])
    with pytest.raises(DataError, match=f"{path}: damaged gzip file"):
        read_event_table(path)


def test_an_unknown_header_names_the_known_layouts_and_the_mapping_flag():
    with pytest.raises(DataError) as error:
        parse_event_table(b"a,b,c\n1,2,3\n", source="shop.csv")
    message = str(error.value)
    assert message.startswith("shop.csv: header ['a', 'b', 'c'] matches no known layout")
    assert "user_session, product_id, event_time" in message and "--columns" in message


def test_a_time_that_is_neither_a_number_nor_a_date_names_the_line():
    with pytest.raises(DataError, match="input: line 3: time 'soon'"):
        parse_event_table(b"SessionId\tItemId\tTime\n1\ta\t10\n1\tb\tsoon\n")
