"""TextFrontend: the Phonemes contract, bad input, and the per-language normalisers on announcement text."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.errors import FrontendError
from runtime.text import normalize_en, normalize_zh
from runtime.text.frontend import LANGUAGES, Phonemes, TextFrontend
from runtime.text.segment import segment
from runtime.text.symbols import symbols_to_ids


@pytest.fixture(scope="module")
def frontend() -> TextFrontend:
    return TextFrontend(max_chars=200)


@pytest.mark.parametrize(
    "text,lang",
    [("各位旅客请注意，G1234次列车15:30发车。", "zh"), ("Gate 12 is now boarding.", "en"),
     ("12号门, Gate 12 is open.", "auto"), ("안녕하세요, welcome to Seoul.", "auto"), ("열차가 도착합니다.", "ko")],
)
def test_phonemes_contract(frontend, text, lang):
    result = frontend.phonemize(text, lang)
    assert isinstance(result, Phonemes)
    assert list(result.ids) == symbols_to_ids(list(result.symbols))
    assert len(result.is_zh_mask) == len(result.symbols) == len(result)
    assert sum(result.word2ph) == len(result.symbols)
    assert "".join(result.segment_norm_texts) == result.norm_text
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.symbols = ()  # type: ignore[misc]


def test_zh_word2ph_aligns_with_norm_text(frontend):
    result = frontend.phonemize("今天是2024年3月5日，气温25度。", "zh")
    assert len(result.word2ph) == len(result.norm_text)
    assert set(result.word2ph) <= {1, 2}
    assert all(result.is_zh_mask)


def test_bert_mask_marks_only_chinese_phones(frontend):
    result = frontend.phonemize("我们使用iPhone拍照。", "zh")
    langs = [lang for lang, _ in result.segments]
    assert langs == ["zh", "en", "zh"]
    assert any(result.is_zh_mask) and not all(result.is_zh_mask)
    english = [s for s, zh in zip(result.symbols, result.is_zh_mask) if not zh]
    assert english == ["AY1", "F", "OW1", "N"]  # "i Phone": capitals start a word, as the official expander


def test_short_text_is_redone_with_a_full_stop(frontend):
    assert frontend.phonemize("你好", "zh").symbols == (".", "n", "i2", "h", "ao3")


def test_control_characters_are_cleaned(frontend):
    clean = frontend.phonemize("你好，世界。", "zh")
    dirty = frontend.phonemize("你好\x00，\u200b世界\x07。", "zh")
    assert dirty.symbols == clean.symbols


@pytest.mark.parametrize(
    "text,lang,message",
    [
        ("", "zh", "empty"),
        ("   \n\t ", "en", "empty"),
        ("\x00\x01", "zh", "empty"),
        ("!!! ...", "en", "nothing to speak"),
        ("😀🎉", "zh", "nothing to speak"),
        ("，。！", "zh", "nothing to speak"),
        ("hello", "fr", "zh, en, ja, ko, yue, auto"),
        ("x" * 201, "en", "cap of 200"),
    ],
)
def test_bad_input_gives_one_clear_error(frontend, text, lang, message):
    with pytest.raises(FrontendError, match=message):
        frontend.phonemize(text, lang)


def test_emoji_inside_words_are_dropped(frontend):
    assert frontend.phonemize("你好😀世界", "zh").symbols == frontend.phonemize("你好世界", "zh").symbols


def test_languages_are_the_documented_ones():
    assert LANGUAGES == ("zh", "en", "ja", "ko", "yue", "auto")


def test_split_sentences_uses_cut5_by_default(frontend):
    assert frontend.split_sentences("各位旅客请注意，列车3.5分钟后到站。请带好行李") == [
        "各位旅客请注意，", "列车3.5分钟后到站。", "请带好行李。",
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("现在是15:30", "现在是十五点半"),
        ("营业时间9:00-21:30", "营业时间九点至二十一点三十分"),
        ("2024年3月5日", "二零二四年三月五日"),
        ("请于2024-12-31前", "请于二零二四年十二月三十一日前"),
        ("气温-3°C", "气温零下三度"),
        ("湿度85%", "湿度百分之八十五"),
        ("时速300km/h", "时速三百千米每小时"),
        ("风速5m/s", "风速五米每秒"),
        ("12.5公里", "十二点五公里"),
        ("拨打13812345678", "拨打幺三八幺二三四五六七八"),
        ("拨打110", "拨打幺幺零"),
        ("共有1,234人", "共有一千二百三十四人"),
        ("3/4的乘客", "四分之三的乘客"),
        ("20~25度", "二十到二十五度"),
        ("比分3:2", "比分三比二"),
        ("第3号", "第三号"),
        ("共有100个", "共有一百个"),
        ("价格-5元", "价格负五元"),
    ],
)
def test_normalize_zh(text, expected):
    assert normalize_zh.normalize(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("at 3:45 pm", "at three forty five P M"),
        ("at 10:00.", "at ten o'clock."),
        ("at 2:05", "at two oh five"),
        ("-3°C", "negative three degrees celsius"),
        ("at 18:05", "at six oh five P M"),
        ("1 km", "one kilometer"),
        ("3/4 and 1/2", "three fourths and one half"),
        ("the iPhone GPS", "the i Phone G P S"),
        ("Wait...", "Wait."),
        ("12 km/h", "twelve kilometers per hour"),
        ("5 m/s", "five meters per second"),
        ("$12.50", "twelve dollars and fifty cents"),
        ("15%", "fifteen percent"),
        ("0.5 km", "zero point five kilometers"),
        ("call 555-123-4567.", "call five five five, one two three, four five six seven."),
        ("on 2024-03-05", "on march fifth, twenty twenty four"),
        ("the 22nd floor", "the twenty second floor"),
        ("1,234 seats", "one thousand two hundred thirty four seats"),
        ("in 1998", "in nineteen ninety eight"),
        ("Dr. Smith", "doctor Smith"),
        ("flight CA981", "flight C A nine eight one"),
        ("platform No. 3", "platform number three"),
        ("25 to 30", "twenty five to thirty"),
    ],
)
def test_normalize_en(text, expected):
    assert normalize_en.normalize(text) == expected


@pytest.mark.parametrize(
    "text,lang,expected",
    [
        ("我们使用iPhone 15发布会", "zh", [("zh", "我们使用"), ("en", "iPhone 15"), ("zh", "发布会")]),
        ("时速300km/h。", "zh", [("zh", "时速300km/h。")]),
        ("気温25°C", "ja", [("ja", "気温25°C")]),
        ("東京駅です。Welcome.", "auto", [("ja", "東京駅です。"), ("en", "Welcome.")]),
        ("서울역 Seoul station", "auto", [("ko", "서울역 "), ("en", "Seoul station")]),
        ("Hello world", "en", [("en", "Hello world")]),
        ("123", "zh", [("zh", "123")]),
        ("G1234次列车", "zh", [("en", "G"), ("zh", "1234次列车")]),
        ("Gate 12. 请到12号门", "auto", [("en", "Gate 12. "), ("zh", "请到12号门")]),
        ("Call 555-1234, 谢谢", "zh", [("en", "Call 555-1234, "), ("zh", "谢谢")]),
        ("3番線", "ja", [("ja", "3番線")]),
    ],
)
def test_segment(text, lang, expected):
    assert segment(text, lang) == expected


@pytest.mark.parametrize("lang", ["zh", "en", "ko", "yue"])
def test_very_long_numbers_are_read_digit_by_digit(frontend, lang):
    if lang == "yue":
        pytest.importorskip("ToJyutping")
    result = frontend.phonemize("1381234567813812345678", lang)
    assert len(result) > 22


@pytest.mark.parametrize(
    "text,expected",
    [
        ("出発は15:30です", "出発は15時30分です"),
        ("10:00に開始", "10時に開始"),
        ("気温は-3°Cです", "気温はマイナス3度です"),
        ("時速300km/h", "時速300キロメートル毎時"),
        ("03-1234-5678まで", "ゼロサンのイチニーサンヨンのゴーロクナナハチまで"),
        ("40%", "40パーセント"),
    ],
)
def test_normalize_ja(text, expected):
    from runtime.text import normalize_ja

    assert normalize_ja.normalize(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("15:30", "열다섯 시 삼십 분"),
        ("사과 3개", "사과 세 개"),
        ("2024", "이천이십사"),
        ("10000", "만"),
        ("3.5", "삼 점 오"),
        ("02-123-4567", "공이 일이삼 사오육칠"),
        ("25°C", "이십오 도"),
        ("007", "영영칠"),
    ],
)
def test_normalize_ko(text, expected):
    from runtime.text import normalize_ko

    assert normalize_ko.normalize(text) == expected


@pytest.mark.parametrize(
    "word,spoken",
    [("국물", "궁물"), ("신라", "실라"), ("좋다", "조타"), ("읽다", "익따"), ("같이", "가치"), ("닭이", "달기"),
     ("앉아", "안자"), ("않아", "아나"), ("싫어", "시러"), ("입니다", "임니다"), ("학교", "학꾜"), ("종로", "종노"),
     ("없어", "업써"), ("넓다", "널따"), ("밖에", "바께"), ("값", "갑")],
)
def test_korean_sound_changes(word, spoken):
    from runtime.text.g2p_ko import hangul_to_jamo

    assert hangul_to_jamo(word) == hangul_to_jamo(spoken)


def test_accented_latin_reads_like_plain(frontend):
    assert frontend.phonemize("Meet at the café.", "en").symbols == frontend.phonemize("Meet at the cafe.", "en").symbols


def test_concurrent_first_use_gives_the_same_phones():
    import threading

    texts = [("各位旅客请注意，本次列车即将到站。", "zh"), ("The train departs at 3:45 pm.", "en"),
             ("12号门, Gate 12 is open.", "auto"), ("열차가 곧 도착합니다.", "ko")]
    expected = {text: TextFrontend().phonemize(text, lang).symbols for text, lang in texts}
    shared = TextFrontend()  # fresh: the threads race on loading the back-ends
    failures: list[str] = []

    def work(offset: int) -> None:
        for k in range(4):
            text, lang = texts[(offset + k) % len(texts)]
            if shared.phonemize(text, lang).symbols != expected[text]:
                failures.append(text)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
