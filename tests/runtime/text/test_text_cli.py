"""`skyvoice phonemize` end to end through the real dispatcher."""

from __future__ import annotations

import io

from runtime.cli import main
from runtime.text.symbols import symbols_to_ids


def test_prints_symbols(capsys):
    assert main(["phonemize", "--lang", "zh", "你好，世界。"]) == 0
    assert capsys.readouterr().out.strip() == "n i2 h ao3 , sh ir4 j ie4 ."


def test_prints_ids(capsys):
    assert main(["phonemize", "--ids", "--lang", "en", "Gate twelve."]) == 0
    ids = [int(i) for i in capsys.readouterr().out.split()]
    assert ids == symbols_to_ids("G EY1 T T W EH1 L V .".split())


def test_split_prints_one_line_per_piece(capsys):
    assert main(["phonemize", "--lang", "auto", "--split", "cut5", "--norm", "Welcome aboard. 欢迎乘坐本次航班！"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("# Welcome aboard.")


def test_reads_stdin(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello there, friend.\n"))
    assert main(["phonemize", "--lang", "en", "-"]) == 0
    assert capsys.readouterr().out.startswith("HH AH0 L OW1")


def test_bad_input_is_a_user_error(capsys):
    assert main(["phonemize", "--lang", "en", "   "]) == 2
    assert "empty" in capsys.readouterr().err
