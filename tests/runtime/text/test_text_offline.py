"""The frontend runs with networking disabled for the whole process, from an empty cache, and without torch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    class NoNetwork(OSError):
        pass
    def refuse(*args, **kwargs):
        raise NoNetwork("network access attempted")
    socket.socket = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    sys.modules["torch"] = None
    from runtime.text.frontend import TextFrontend
    frontend = TextFrontend()
    out = {}
    for lang, text in json.loads(sys.argv[1]):
        out[lang] = " ".join(frontend.phonemize(text, lang).symbols)
    print(json.dumps(out, ensure_ascii=False))
    """
)


def test_every_language_works_offline_from_an_empty_cache(tmp_path):
    cases = [
        ["zh", "各位旅客请注意，本次列车15:30发车。"],
        ["en", "The train departs at 3:45 pm."],
        ["auto", "12号登机口, Gate 12 is open."],
        ["ko", "열차가 곧 도착합니다."],
    ]
    if importlib.util.find_spec("pyopenjtalk") is not None:
        cases.append(["ja", "まもなく東京駅に到着します。"])
    if importlib.util.find_spec("ToJyutping") is not None:
        cases.append(["yue", "下一站係旺角。"])
    env = dict(os.environ, SKYVOICE_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases, ensure_ascii=False)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(out) == {lang for lang, _ in cases}
    assert out["zh"].startswith("g e4 w ei4 l v3 k e4")
    assert out["en"].startswith("DH AH0 T R EY1 N")
    assert (tmp_path / "cache" / "jieba.cache").exists()  # jieba's cache went where we told it
