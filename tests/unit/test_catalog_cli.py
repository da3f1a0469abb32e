"""``streamrec catalog``: help on every action, catalog files read as documented, and bad input
refused with a message naming the problem before anything reaches Kafka."""

import pytest

from schemas.catalog import CatalogEntry, item_id_of
from streamer.cli import main
from streamer.tools.catalog_files import CatalogFileError, attribute_value, read_catalog_file

NOWHERE = "127.0.0.1:1"  # nothing listens: a command that tried Kafka would fail with another code


def entries(records) -> list[tuple[str, CatalogEntry | None]]:
    return [(item_id_of(k), None if v is None else CatalogEntry.from_bytes(v)) for k, v in records]


@pytest.mark.parametrize("action", [[], ["set"], ["delete"], ["load"]])
def test_every_catalog_action_has_help(action, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["catalog", *action, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: streamrec catalog{''.join(' ' + a for a in action)}")
    if action:
        assert "--bootstrap-servers" in out and "exit codes" in out


def test_set_requires_saying_available_or_unavailable(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["catalog", "set", "a"])
    assert exited.value.code == 2
    assert "one of the arguments --available --unavailable is required" in capsys.readouterr().err


def test_an_attribute_without_a_value_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["catalog", "set", "a", "--available", "--attr", "brand"])
    assert "expected KEY=VALUE, got 'brand'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "x" * 300, "--unavailable"], "an item id has 1 to 256 characters, the key has 300"),
        (["delete", ""], "an item id has 1 to 256 characters, the key has 0"),
        (["set", "a", "--available", "--attr", f"notes={'x' * 2000}"], "length <= 1024"),
        (["load", "/no/such/catalog.csv"], "/no/such/catalog.csv: No such file or directory"),
    ],
)
def test_bad_input_is_named_and_nothing_is_published(argv, message, capsys):
    assert main(["catalog", *argv, "--bootstrap-servers", NOWHERE]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"streamrec catalog {argv[0]}: ") and message in err


def test_a_bad_setting_is_named(monkeypatch, capsys):
    monkeypatch.setenv("STREAMREC_CATALOG_TOPIC", " ")
    assert main(["catalog", "delete", "a"]) == 2
    assert "configuration error: STREAMREC_CATALOG_TOPIC must not be empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12.5", 12.5),
        ("3", 3),
        ("true", True),
        ("false", False),
        ("acme", "acme"),
        ("00123", "00123"),
        ('"123"', '"123"'),
        ("null", "null"),
        ("", ""),
    ],
)
def test_an_attribute_value_is_a_number_or_boolean_when_it_reads_as_one(text, value):
    assert attribute_value(text) == value and type(attribute_value(text)) is type(value)


def test_a_csv_file_gives_availability_and_its_other_columns_as_attributes(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(
        "\ufeffitem_id,available,brand,price\n214536502,false,acme,12.5\n214536506,Yes,,\n\n7,0,x,1\n"
    )
    assert entries(read_catalog_file(path)) == [
        ("214536502", CatalogEntry(False, {"brand": "acme", "price": 12.5})),
        ("214536506", CatalogEntry(True)),
        ("7", CatalogEntry(False, {"brand": "x", "price": 1})),
    ]


def test_a_tsv_file_is_recognised_by_the_tab_in_its_header(tmp_path):
    path = tmp_path / "items.txt"
    path.write_text("available\titem_id\n1\tcaf\u00e9, the item\nno\tb\n")
    assert entries(read_catalog_file(path)) == [
        ("caf\u00e9, the item", CatalogEntry(True)),
        ("b", CatalogEntry(False)),
    ]


def test_a_json_lines_file_takes_string_or_integer_ids(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(
        '{"item_id": "a", "available": false, "attributes": {"brand": "acme"}}\n'
        "\n"
        '{"item_id": 214536502, "available": true}\n'
    )
    assert entries(read_catalog_file(path)) == [
        ("a", CatalogEntry(False, {"brand": "acme"})),
        ("214536502", CatalogEntry(True)),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("item,available\na,true\n", "no item_id column (it has: item, available)", id="no id"),
        pytest.param("item_id,stock\na,1\n", "no available column", id="no availability"),
        pytest.param("item_id,available\na,true\nb,maybe\n", "line 3: available must be one of", id="word"),
        pytest.param("item_id,available\na,true,extra\n", "line 2: 3 fields, the header has 2", id="fields"),
        pytest.param("item_id,available\n,true\n", "line 2: an item id has 1 to 256", id="empty id"),
        pytest.param("item_id,available\n", "no items", id="no rows"),
        pytest.param("", "no items", id="empty file"),
        pytest.param(
            '{"item_id": "a", "available": true}\n{"item_id": "b"}\n',
            "line 2: 'available' is required",
            id="jsonl without availability",
        ),
        pytest.param(
            '{"item_id": "a", "available": "no"}\n', "line 1: 'available': expected `bool`", id="jsonl text"
        ),
        pytest.param('{"item_id": "a", "available": true\n', "line 1: ", id="jsonl cut short"),
    ],
)
def test_a_bad_catalog_file_is_refused_naming_the_line_and_problem(tmp_path, content, message):
    path = tmp_path / "items.csv"
    path.write_text(content)
    with pytest.raises(CatalogFileError) as refused:
        read_catalog_file(path)
    assert str(refused.value).startswith(f"{path}") and message in str(refused.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(b"item_id,available\n\xff,true\n")
    with pytest.raises(CatalogFileError, match="not UTF-8 text"):
        read_catalog_file(path)
