"""`# noqa` parsing and matching: comments only, codes or bare, reported row or statement row."""

from seqlint.findings import Finding, Location
from seqlint.noqa import parse_noqa


def finding(code="SEQ101", row=3, statement_row=None):
    return Finding(code, "name", "message", "f.py", Location(row, 5), Location(row, 9),
                   statement_row=statement_row)


def test_bare_noqa_suppresses_every_rule_on_its_line():
    d = parse_noqa("a = 1\nb = 2\nc = 3  # noqa\n")
    assert d.suppresses(finding("SEQ101", 3))
    assert d.suppresses(finding("SEQ999", 3))
    assert not d.suppresses(finding("SEQ101", 2))


def test_coded_noqa_suppresses_only_named_codes():
    d = parse_noqa("x = 1\ny = 2\nz = 3  # noqa: SEQ101, SEQ201\n")
    assert d.suppresses(finding("SEQ101", 3))
    assert d.suppresses(finding("SEQ201", 3))
    assert not d.suppresses(finding("SEQ102", 3))


def test_code_list_forms():
    src = "a = 1  # noqa:SEQ101,SEQ102\nb = 2  # NOQA: seq103 SEQ104 because reasons\n"
    d = parse_noqa(src)
    assert d.rows[1] == {"SEQ101", "SEQ102"}
    assert d.rows[2] == {"SEQ103", "SEQ104"}


def test_noqa_inside_a_string_is_not_a_directive():
    d = parse_noqa('x = 1\ny = 2\nz = "# noqa"\n')
    assert not d.suppresses(finding("SEQ101", 3))
    d = parse_noqa('s = """\n# noqa\n"""\n')
    assert d.rows == {}


def test_noqa_on_the_statement_row_covers_a_multiline_statement():
    src = "x = compute(  # noqa: SEQ101\n    a,\n    b,\n)\n"
    d = parse_noqa(src)
    assert d.suppresses(finding("SEQ101", row=3, statement_row=1))
    assert not d.suppresses(finding("SEQ101", row=3, statement_row=None))
    assert not d.suppresses(finding("SEQ102", row=3, statement_row=1))


def test_glued_word_is_not_noqa():
    assert parse_noqa("x = 1  # noqanything\n").rows == {}


def test_file_level_exemption_only_in_the_leading_comment_block():
    header = "#!/usr/bin/env python\n# seqlint: noqa\n\nimport os\n"
    assert parse_noqa(header).file_exempt
    assert parse_noqa(header).suppresses(finding("SEQ305", 40))
    later = "import os\n# seqlint: noqa\n"
    assert not parse_noqa(later).file_exempt


def test_bare_and_coded_on_one_line_stays_bare():
    d = parse_noqa("x = 1  # noqa  # noqa: SEQ101\n")
    assert d.rows[1] is None


def test_unterminated_source_keeps_directives_read_so_far():
    d = parse_noqa("x = 1  # noqa: SEQ101\ny = (\n")
    assert d.suppresses(finding("SEQ101", 1))


def test_unknown_seqlint_codes_are_found_other_linters_codes_are_not():
    from seqlint.noqa import unknown_codes

    known = frozenset({"SEQ101", "SEQ302"})
    source = ("x = 1  # noqa: SEQ999, E501, SEQ101\n"
              "s = '# noqa: SEQ998'\n"
              "z = 3  # noqa: seq302\n")
    assert unknown_codes(source, known) == [(1, "SEQ999")]


def test_unknown_noqa_code_warns_on_the_command_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "gen.py").write_text(
        "from tensorflow import keras\n\n\nclass Gen(keras.utils.PyDataset):\n"
        "    def __init__(self, x):  # noqa: SEQ320\n        self.x = x\n")
    proc = subprocess.run([sys.executable, "-m", "seqlint", "check", "gen.py", "--output-format", "concise"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1  # the typo suppresses nothing: SEQ302 is still reported
    assert "gen.py:5:9: SEQ302" in proc.stdout
    assert ("warning: gen.py:5: `# noqa` names SEQ320, which is not a seqlint rule (`seqlint rule --all` "
            "lists them); it suppresses nothing") in proc.stderr
