#!/usr/bin/env python3
"""Text-frontend benchmark (issue 3's targets: cold start < 2 s, a 200-character sentence < 50 ms on a 2-core VM).

Each language's cold start runs in its own fresh subprocess (imports + dictionaries + first sentence); warm timings
are the median of 20 runs of a ~200-character sentence in one process. Writes bench/frontend.json and bench/frontend.md.

    .venv/bin/python scripts/bench_frontend.py
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = {
    "zh": "各位旅客请注意，由于前方线路故障，本次列车将在南京南站临时停车约十五分钟，预计于15:30重新发车，请您不要离开座位，"
          "留意车厢广播，如需帮助请联系列车员，电话010-12345678，我们对给您带来的不便深表歉意，感谢您的理解与配合，祝您旅途愉快。"
          "今天夜间有大风，气温降至零下5°C，风速约12m/s，请注意保暖，下车时请小心站台与列车之间的空隙，谢谢。",
    "en": "Attention all passengers: due to a signal failure ahead, this train will stop at Nanjing South for about "
          "fifteen minutes and depart again at 3:30 PM; please stay in your seats and listen for further announcements.",
    "ja": "お客様にお知らせいたします。前方の信号故障のため、この列車は南京南駅で約十五分間停車いたします。"
          "発車は十五時三十分を予定しております。座席でお待ちください。ご迷惑をおかけして申し訳ございません。"
          "今夜は強い風が吹き、気温は氷点下まで下がる見込みです。お降りの際は足元にご注意ください。",
    "ko": "승객 여러분께 알려드립니다. 전방 신호 장애로 인해 이 열차는 남경남역에서 약 십오 분간 정차합니다. "
          "출발은 오후 세 시 삼십 분으로 예정되어 있습니다. 자리에서 기다려 주시기 바랍니다. 불편을 드려 죄송합니다.",
    "yue": "各位乘客請注意，由於前面路段發生故障，本班列車將會喺南京南站暫停大約十五分鐘，預計下晝三點半再開出，"
           "請大家留喺座位，留意車廂廣播，如有需要請聯絡車長，為你帶來不便，我哋深表歉意，多謝合作。"
           "今晚會有強風，氣溫會跌到零度以下，落車嘅時候請小心月台同列車之間嘅空隙，多謝。",
}
COLD = """
import time, sys
t0 = time.perf_counter()
from runtime.text.frontend import TextFrontend
TextFrontend().phonemize(sys.argv[2], sys.argv[1])
print(time.perf_counter() - t0)
"""


def main() -> int:
    rows = {}
    sys.path.insert(0, str(ROOT))
    from runtime.text.frontend import TextFrontend

    frontend = TextFrontend()
    for lang, text in SENTENCES.items():
        cold = float(subprocess.run([sys.executable, "-c", COLD, lang, text], capture_output=True, text=True, check=True, cwd=ROOT).stdout)
        frontend.phonemize(text, lang)
        times = []
        for _ in range(20):
            start = time.perf_counter()
            phones = frontend.phonemize(text, lang)
            times.append(time.perf_counter() - start)
        rows[lang] = {"chars": len(text), "phones": len(phones.ids), "cold_start_s": round(cold, 3),
                      "warm_ms_median": round(1000 * statistics.median(times), 2)}
    machine = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
               "cpus": __import__("os").cpu_count(), "date": time.strftime("%Y-%m-%d"),
               "load_average_1m": round(__import__("os").getloadavg()[0], 2)}
    out = ROOT / "bench"
    out.mkdir(exist_ok=True)
    (out / "frontend.json").write_text(json.dumps({"machine": machine, "languages": rows}, indent=1) + "\n")
    lines = ["| lang | chars | phones | cold start s (target < 2) | warm ms (target < 50) |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['chars']} | {v['phones']} | {v['cold_start_s']} | {v['warm_ms_median']} |" for k, v in rows.items()]
    (out / "frontend.md").write_text(
        f"# Text frontend benchmark\n\n{machine['date']}, {machine['cpus']} CPUs {machine['machine']}, Python {machine['python']}; "
        f"load average {machine['load_average_1m']} (a shared VM: absolute times drift with load); "
        "cold start = fresh process, import + dictionaries + one sentence.\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
