"""Mandarin tone sandhi on jieba words: 不, 一, third-tone chains, neutral tones, and the word merges before them.

Implements the rules of PaddleSpeech's ToneSandhi as GPT-SoVITS uses it, written from the rule descriptions:
finals are pypinyin FINALS_TONE3 strings ("ao3"); every rule rewrites the trailing tone digit.
The neutral-tone word list is our own curated subset of common words (documented in docs/frontend.md).
"""

from __future__ import annotations

from typing import Callable, Final

Seg = list[list[str]]  # [[word, pos], ...]
FinalsOf = Callable[[str], list[str]]
SplitWord = Callable[[str], list[str]]

# Common words whose last syllable is neutral (tone 5): our curated subset of the conventional list
# (reduplicated kin terms and -们/-子 words are left to the rules below).
NEUTRAL_TONE_WORDS: Final = frozenset(
    """
    东西 朋友 先生 时候 事情 衣服 意思 明白 告诉 地方 关系 客气 麻烦 打扮 打算 打听 收拾 商量 舒服 喜欢 认识 休息 消息 困难 便宜 漂亮 热闹 清楚 凉快 暖和 舒坦 结实
    踏实 老实 聪明 糊涂 马虎 大方 痛快 利索 咳嗽 窗户 豆腐 部分 月亮 太阳 眼睛 耳朵 嘴巴 脑袋 头发 胳膊 指头 姑娘 女婿 媳妇 丈夫 师傅 大夫 萝卜 葡萄 芝麻 石头 木头
    骨头 馒头 枕头 舌头 念头 跟头 里头 上头 后头 前头 地道 招呼 嘱咐 委屈 折腾 琢磨 拾掇 张罗 嘀咕 糟蹋 算计 比方 合同 扎实 精神 生意 买卖 故事 规矩 本事 学问 动静
    动弹 交情 名字 名堂 模糊 玻璃 琵琶 云彩 庄稼 包袱 脾气 力气 福气 运气 小气 人家 自在 实在 点心 记性 学生 哑巴 尾巴 下巴 篱笆 喇叭 疙瘩 蛤蟆 蘑菇 核桃 胡同 胡琴
    出息 爱人 亲戚 主意 什么 怎么 那么 这么 多么 行李 护士 使唤
    """.split()
)
# Words that look reduplicated or end in 们/子 but keep their full tone.
NOT_NEUTRAL_TONE_WORDS: Final = frozenset(
    "男子 女子 分子 原子 量子 电子 瓜子 石子 莲子 学子 人人 干嘛 哈哈 数数 想想 整整 落地 耕地 以下 考考 打打 "
    "家家户户 花花草草 青青 死死 算子 卵子 幺幺".split()
)
_MODAL_PARTICLES: Final = "吧呢哈啊呐噻嘛吖嗨哦哒额滴哩哟喽啰耶喔诶"
_PUNCT_AFTER_YI: Final = frozenset("：，；。？！“”‘’':,;.?!")


def _set_tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_tone_three(finals: list[str]) -> bool:
    return all(final[-1] == "3" for final in finals)


def _is_reduplication(word: str) -> bool:
    return len(word) == 2 and word[0] == word[1]


class ToneSandhi:
    """Stateless rules; `finals_of(word)` gives pypinyin finals with tones, `split_word` a search-mode split."""

    def __init__(self, finals_of: FinalsOf, split_word: SplitWord) -> None:
        self._finals_of = finals_of
        self._split_word_search = split_word

    # --- merges over the jieba segmentation ---------------------------------------------------------------
    def pre_merge(self, seg: list[tuple[str, str]]) -> Seg:
        merged = self._merge_bu([[w, p] for w, p in seg])
        merged = self._merge_yi(merged)
        merged = self._merge_reduplication(merged)
        merged = self._merge_three_tones(merged, whole_words=True)
        merged = self._merge_three_tones(merged, whole_words=False)
        return self._merge_er(merged)

    @staticmethod
    def _merge_bu(seg: Seg) -> Seg:
        out: Seg = []
        last = ""
        for word, pos in seg:
            if last == "不":
                word = last + word
            if word != "不":
                out.append([word, pos])
            last = word
        if last == "不":
            out.append([last, "d"])
        return out

    @staticmethod
    def _merge_yi(seg: Seg) -> Seg:
        first: Seg = []
        for i, (word, pos) in enumerate(seg):
            reduplicated = (
                0 < i < len(seg) - 1 and word == "一" and seg[i - 1][0] == seg[i + 1][0] and seg[i - 1][1] == "v"
            )
            if reduplicated:
                first[-1][0] = first[-1][0] + "一" + first[-1][0]
            elif i >= 2 and seg[i - 1][0] == "一" and seg[i - 2][0] == word and pos == "v":
                continue
            else:
                first.append([word, pos])
        out: Seg = []
        for word, pos in first:
            if out and out[-1][0] == "一":
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    @staticmethod
    def _merge_reduplication(seg: Seg) -> Seg:
        out: Seg = []
        for word, pos in seg:
            if out and word == out[-1][0]:
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    def _merge_three_tones(self, seg: Seg, whole_words: bool) -> Seg:
        finals = [self._finals_of(word) for word, _ in seg]
        out: Seg = []
        merged_last = [False] * len(seg)
        for i, (word, pos) in enumerate(seg):
            if i > 0 and finals[i - 1] and finals[i] and not merged_last[i - 1]:
                if whole_words:
                    meets = _all_tone_three(finals[i - 1]) and _all_tone_three(finals[i])
                else:
                    meets = finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
                if meets and not _is_reduplication(seg[i - 1][0]) and len(seg[i - 1][0]) + len(word) <= 3:
                    out[-1][0] += word
                    merged_last[i] = True
                    continue
            out.append([word, pos])
        return out

    @staticmethod
    def _merge_er(seg: Seg) -> Seg:
        out: Seg = []
        for i, (word, pos) in enumerate(seg):
            if i > 0 and word == "儿" and seg[i - 1][0] != "#":
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    # --- tone rewriting on one word ----------------------------------------------------------------------
    def modify(self, word: str, pos: str, finals: list[str]) -> list[str]:
        finals = list(finals)
        if len(finals) != len(word) or any(not f or f[-1] not in "12345" for f in finals):
            return finals  # punctuation or non-Han runs: nothing to rewrite
        finals = self._bu(word, finals)
        finals = self._yi(word, finals)
        finals = self._neutral(word, pos, finals)
        return self._three(word, finals)

    @staticmethod
    def _bu(word: str, finals: list[str]) -> list[str]:
        if len(word) == 3 and word[1] == "不":
            finals[1] = _set_tone(finals[1], "5")  # 看不懂
            return finals
        for i, char in enumerate(word):
            if char == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":
                finals[i] = _set_tone(finals[i], "2")  # 不怕
        return finals

    @staticmethod
    def _yi(word: str, finals: list[str]) -> list[str]:
        if "一" in word and all(char.isnumeric() for char in word if char != "一"):
            return finals  # digit strings such as 一零一
        if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
            finals[1] = _set_tone(finals[1], "5")  # 看一看
        elif word.startswith("第一"):
            finals[1] = _set_tone(finals[1], "1")
        else:
            for i, char in enumerate(word):
                if char == "一" and i + 1 < len(word):
                    if finals[i + 1][-1] == "4":
                        finals[i] = _set_tone(finals[i], "2")  # 一段
                    elif word[i + 1] not in _PUNCT_AFTER_YI:
                        finals[i] = _set_tone(finals[i], "4")  # 一天
        return finals

    def _neutral(self, word: str, pos: str, finals: list[str]) -> list[str]:
        for j in range(1, len(word)):
            if word[j] == word[j - 1] and pos[:1] in {"n", "v", "a"} and word not in NOT_NEUTRAL_TONE_WORDS:
                finals[j] = _set_tone(finals[j], "5")  # 奶奶, 看看
        ge = word.find("个")
        last = word[-1]
        if last in _MODAL_PARTICLES or last in "的地得":
            finals[-1] = _set_tone(finals[-1], "5")
        elif len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
            finals[-1] = _set_tone(finals[-1], "5")
        elif len(word) > 1 and last in "们子" and pos in {"r", "n"} and word not in NOT_NEUTRAL_TONE_WORDS:
            finals[-1] = _set_tone(finals[-1], "5")
        elif len(word) > 1 and last in "上下里" and pos in {"s", "l", "f"}:
            finals[-1] = _set_tone(finals[-1], "5")  # 桌上, 家里
        elif len(word) > 1 and last in "来去" and word[-2] in "上下进出回过起开":
            finals[-1] = _set_tone(finals[-1], "5")  # 上来, 出去
        elif (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")) or word == "个":
            finals[ge] = _set_tone(finals[ge], "5")
        elif word in NEUTRAL_TONE_WORDS or word[-2:] in NEUTRAL_TONE_WORDS:
            finals[-1] = _set_tone(finals[-1], "5")
        parts = self._split_in_two(word)
        head = len(parts[0])
        groups = [finals[:head], finals[head:]]
        for part, group in zip(parts, groups):
            if group and (part in NEUTRAL_TONE_WORDS or part[-2:] in NEUTRAL_TONE_WORDS):
                group[-1] = _set_tone(group[-1], "5")
        return groups[0] + groups[1]

    def _split_in_two(self, word: str) -> list[str]:
        pieces = sorted(self._split_word_search(word), key=len)
        first = pieces[0] if pieces else word
        if word.find(first) == 0:
            return [first, word[len(first) :]]
        return [word[: -len(first)], first]

    def _three(self, word: str, finals: list[str]) -> list[str]:
        if len(word) == 2 and _all_tone_three(finals):
            finals[0] = _set_tone(finals[0], "2")
        elif len(word) == 3:
            parts = self._split_in_two(word)
            if _all_tone_three(finals):
                if len(parts[0]) == 2:  # 蒙古/包
                    finals[0] = _set_tone(finals[0], "2")
                    finals[1] = _set_tone(finals[1], "2")
                elif len(parts[0]) == 1:  # 纸/老虎
                    finals[1] = _set_tone(finals[1], "2")
            else:
                head = len(parts[0])
                groups = [finals[:head], finals[head:]]
                for i, group in enumerate(groups):
                    if len(group) == 2 and _all_tone_three(group):
                        group[0] = _set_tone(group[0], "2")  # 所有/人
                    elif (
                        i == 1 and group and groups[0] and not _all_tone_three(group)
                        and group[0][-1] == "3" and groups[0][-1][-1] == "3"
                    ):
                        groups[0][-1] = _set_tone(groups[0][-1], "2")  # 好/喜欢
                finals = groups[0] + groups[1]
        elif len(word) == 4:
            out: list[str] = []
            for group in (finals[:2], finals[2:]):
                if _all_tone_three(group):
                    group[0] = _set_tone(group[0], "2")
                out += group
            finals = out
        return finals
