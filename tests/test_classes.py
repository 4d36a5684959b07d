"""The one class-table parser: every shape a classes.json / classes.txt may take, and each refusal's exact line."""

from __future__ import annotations

import json

import pytest

from segcli.classes import ClassTable, dataset_classes, distinct_palette, parse_classes, read_class_file
from segcli.errors import DataError

# segcli's palette as the docs show it: the fixed table, then golden-ratio hues (values from segcli 0.1).
PALETTE_0_4 = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200]]
PALETTE_19_24 = [[0, 0, 128], [242, 85, 85], [0, 71, 242], [130, 178, 62], [178, 0, 156]]


def _write(folder, name, content):
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_distinct_palette_is_unchanged():
    assert distinct_palette(5) == PALETTE_0_4
    assert distinct_palette(24)[19:] == PALETTE_19_24
    assert distinct_palette(0) == []


@pytest.mark.parametrize("data, names, colors, given", [
    (["sky", "road"], ("sky", "road"), PALETTE_0_4[:2], False),
    ([{"name": "sky", "color": [0, 0, 255]}, {"name": "road", "color": [128, 64, 128]}],
     ("sky", "road"), [[0, 0, 255], [128, 64, 128]], True),
    ([{"name": "sky", "colour": [0, 0, 255]}], ("sky",), [[0, 0, 255]], True),
    ({"classes": ["a", {"name": "b", "color": [1, 2, 3]}, "c"]}, ("a", "b", "c"),
     [PALETTE_0_4[0], [1, 2, 3], PALETTE_0_4[2]], False),
    ({"names": [" a ", "b"]}, ("a", "b"), PALETTE_0_4[:2], False),
    ({"classes": ["a", "b"], "palette": [[9, 9, 9], [8, 8, 8]]}, ("a", "b"), [[9, 9, 9], [8, 8, 8]], True),
    ({"classes": ["a", {"name": "b", "color": [7, 7, 7]}], "colors": [[9, 9, 9], [8, 8, 8]]},
     ("a", "b"), [[9, 9, 9], [7, 7, 7]], True),
    ([{"name": "a", "color": None}, "b"], ("a", "b"), PALETTE_0_4[:2], False),
])
def test_classes_json_shapes(tmp_path, data, names, colors, given):
    _write(tmp_path, "classes.json", data)
    table = read_class_file(tmp_path)
    assert table.names == names
    assert [list(c) for c in table.colors] == colors
    assert table.colors_given is given and table.source == "classes.json"
    assert table.as_dicts() == [{"name": n, "color": c} for n, c in zip(names, colors)]
    assert table.to_json() == {"classes": table.as_dicts()}
    assert parse_classes(data, "anything.json").as_dicts() == table.as_dicts()


def test_classes_txt_one_name_per_line_and_json_wins(tmp_path):
    _write(tmp_path, "classes.txt", "background\n\n  cat \ndog\n")
    table = read_class_file(tmp_path)
    assert (table.names, table.source, table.colors_given) == (("background", "cat", "dog"), "classes.txt", False)
    assert [list(c) for c in table.colors] == PALETTE_0_4[:3]
    _write(tmp_path, "classes.json", ["x"])
    assert read_class_file(tmp_path).names == ("x",)


def test_no_class_file_is_none(tmp_path):
    assert read_class_file(tmp_path) is None


def _bad_color(color):
    return f"PATH: class 0 ('a') has color {color}; use [r, g, b] with integers 0-255."


def _entry(i, item):
    return f"PATH: entry {i} is {item}; use a name or {{\"name\": ..., \"color\": [r, g, b]}}."


SHAPES = "PATH: expected a non-empty list of class names or {\"name\", \"color\"} objects."


@pytest.mark.parametrize("content, message", [
    ([], SHAPES),
    ({"classes": []}, SHAPES),
    ({"palette": [[0, 0, 0]]}, SHAPES),
    ("\"road\"", SHAPES),
    (7, SHAPES),
    (["a", 5], _entry(1, "5")),
    ([{"color": [1, 2, 3]}], _entry(0, "{'color': [1, 2, 3]}")),
    (["a", "  "], _entry(1, "'  '")),
    ([{"name": "a", "color": [256, 0, 0]}], _bad_color("[256, 0, 0]")),
    ([{"name": "a", "color": [1, 2]}], _bad_color("[1, 2]")),
    ([{"name": "a", "colour": "red"}], _bad_color("'red'")),
    ([{"name": "a", "color": [1.5, 0, 0]}], _bad_color("[1.5, 0, 0]")),
    ([{"name": "a", "color": [True, 0, 0]}], _bad_color("[True, 0, 0]")),
    ({"classes": ["a", "b"], "palette": [[0, 0, 0]]},
     "PATH: the palette has 1 colour for 2 classes; give one [r, g, b] per class."),
    ({"classes": ["a", "b"], "palette": "rgb"}, "PATH: palette 'rgb' is not a list; give one [r, g, b] per class."),
    ({"classes": ["a", "b"], "colors": [[0, 0, 0], [1, 2, -3]]},
     "PATH: palette entry 1 has color [1, 2, -3]; use [r, g, b] with integers 0-255."),
])
def test_each_malformed_classes_json_is_refused_with_one_line_naming_the_file(tmp_path, content, message):
    path = _write(tmp_path, "classes.json", content)
    with pytest.raises(DataError) as info:
        read_class_file(tmp_path)
    assert str(info.value) == message.replace("PATH", str(path))


def test_unreadable_class_files(tmp_path):
    path = _write(tmp_path, "classes.json", "[\"a\",")
    with pytest.raises(DataError, match=r"^.*classes\.json: not valid JSON \(.*\); fix it or remove it\.$"):
        read_class_file(tmp_path)
    path.unlink()
    _write(tmp_path, "classes.txt", "\n  \n")
    with pytest.raises(DataError) as info:
        read_class_file(tmp_path)
    assert str(info.value) == f"{tmp_path / 'classes.txt'}: no class names; write one name per line."
    (tmp_path / "classes.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match=r"classes\.txt: cannot be read \(.*\); fix it or remove it\.$"):
        read_class_file(tmp_path)


def test_bundled_tables():
    ade, city = dataset_classes("ade20k"), dataset_classes("cityscapes")
    assert (len(ade), ade.names[:3], ade.source, ade.colors_given) == (150, ("wall", "building", "sky"), "ade20k",
                                                                       True)
    assert (len(city), city.names[0], city.colors[0], city.names[-1]) == (19, "road", (128, 64, 128), "bicycle")
    with pytest.raises(DataError) as info:
        dataset_classes("coco")
    assert str(info.value) == "No bundled class table 'coco'; use one of ade20k, cityscapes."


def test_complete_keeps_known_classes_then_pads_in_unused_colours():
    assert ClassTable.from_names([]).complete(3).as_dicts() == [
        {"name": f"class_{i}", "color": c} for i, c in enumerate(PALETTE_0_4[:3])]
    table = ClassTable.from_dicts([{"name": "road", "color": [230, 25, 75]}, {"name": "sky", "color": [0, 0, 0]}],
                                  source="classes.json")
    done = table.complete(4)
    assert done.names == ("road", "sky", "class_2", "class_3")
    assert done.colors[:3] == ((230, 25, 75), (0, 0, 0), (60, 180, 75))
    assert len(set(done.colors)) == 4 and done.source == "classes.json" and done.colors_given
    assert table.complete(1).names == ("road",)


def test_from_dicts_and_from_names():
    assert len(ClassTable.from_dicts(None)) == 0 and len(ClassTable.from_dicts([])) == 0
    table = ClassTable.from_names(["a", "b"], source="x")
    assert ClassTable.from_dicts(table) is table
    assert ClassTable.from_dicts(table.as_dicts(), source="x") == ClassTable(("a", "b"), table.colors, True, "x")
    with pytest.raises(DataError) as info:
        ClassTable.from_dicts([{"name": "a", "color": [1, 2, 3, 4]}], source="record.json")
    assert str(info.value) == "record.json: class 0 ('a') has color [1, 2, 3, 4]; use [r, g, b] with integers 0-255."


def test_subset_in_the_given_order_and_its_refusals():
    table = ClassTable.from_names(["bg", "cat", "dog"], source="classes.txt")
    sub = table.subset(["dog", "bg"])
    assert sub.names == ("dog", "bg") and sub.colors == (table.colors[2], table.colors[0])
    for keep, message in ((["cow"], "DATA: class 'cow' is not one of the 3 classes of classes.txt (bg, cat, dog); "
                                    "use their names."),
                          (["cat", "cat"], "DATA: class 'cat' is named twice in the classes to keep; name each once."),
                          ([], "DATA: no classes to keep; name at least one class.")):
        with pytest.raises(DataError) as info:
            table.subset(keep, "DATA")
        assert str(info.value) == message
