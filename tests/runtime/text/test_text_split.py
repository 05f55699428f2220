"""Sentence splitting: cut0..cut5 and the official pre-segmentation rules."""

from __future__ import annotations

import pytest

from runtime.errors import FrontendError
from runtime.text.split import (
    CUT_METHODS,
    cut1,
    cut2,
    cut3,
    cut4,
    cut5,
    merge_short_pieces,
    split_long_piece,
    split_sentences,
)


def test_cut5_splits_at_every_mark_and_keeps_decimal_points():
    assert cut5("气温是3.5度，明天下雨！好的。") == ["气温是3.5度，", "明天下雨！", "好的。"]
    assert cut5("Pi is 3.14. Done") == ["Pi is 3.14.", " Done"]


def test_cut5_drops_pieces_that_are_only_marks():
    assert cut5("你好。。。！世界") == ["你好。", "世界"]


def test_cut4_splits_at_full_stops_not_decimals():
    assert cut4("It is 2.5 km. Go now. Ok") == ["It is 2.5 km.", " Go now.", " Ok"]


def test_cut3_splits_at_chinese_full_stop_only():
    assert cut3("第一句，还是第一句。第二句。") == ["第一句，还是第一句。", "第二句。"]


def test_cut1_groups_four_sentences():
    assert cut1("一。二。三。四。五。") == ["一。二。三。四。", "五。"]


def test_cut2_accumulates_about_fifty_chars():
    text = "这是一个比较长的句子用来测试切分，" * 5
    pieces = cut2(text)
    assert "".join(pieces) == text
    assert all(len(piece) > 50 for piece in pieces[:-1])


def test_short_first_sentence_gets_a_full_stop_in_front():
    assert split_sentences("你好。今天天气很好，我们出去玩吧。")[0].startswith("你好。今天")
    assert split_sentences("Hi. The train is late.", lang="en") == ["Hi. The train is late."]


def test_short_pieces_merge():
    assert merge_short_pieces(["好。", "的。", "我们走吧。"]) == ["好。的。我们走吧。"]
    assert merge_short_pieces(["我们走吧。", "好的", "谢谢你们。"]) == ["我们走吧。", "好的谢谢你们。"]
    assert merge_short_pieces(["我们走吧。", "好。"]) == ["我们走吧。好。"]


def test_final_mark_is_appended():
    assert split_sentences("今天天气很好") == ["今天天气很好。"]
    assert split_sentences("The train is late", lang="en") == ["The train is late."]


def test_long_pieces_are_split_under_510_chars():
    piece = "这是一句话，" * 200
    pieces = split_long_piece(piece)
    assert "".join(pieces) == piece
    assert all(len(p) <= 510 for p in pieces)
    assert all(len(p) <= 510 for p in split_sentences(piece, method="cut0"))


def test_only_marks_give_no_pieces():
    assert split_sentences("。，！") == []
    assert split_sentences("   ") == []


@pytest.mark.parametrize("method", sorted(CUT_METHODS))
def test_every_method_keeps_the_words(method):
    text = "各位旅客请注意，本次列车即将到站。请带好随身物品，有序下车！"
    pieces = split_sentences(text, method=method)
    assert "".join(pieces).replace("。", "").replace("，", "").replace("！", "") == text.replace("。", "").replace(
        "，", ""
    ).replace("！", "")


def test_unknown_method():
    with pytest.raises(FrontendError, match="cut0, cut1"):
        split_sentences("你好", method="cut9")
