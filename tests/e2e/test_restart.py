"""kill -9 while commands are queued: after a restart none is lost and none is played twice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime" / "daemon"))

from daemon_docs import speak_doc  # noqa: E402


def test_kill9_with_queued_commands_loses_and_repeats_nothing(make_box):
    box = make_box().start()
    box.wait_online()
    before = [speak_doc(f"Number {i}.") for i in range(6)]
    box.publish_lines("speak", [json.dumps(d).encode() for d in before])
    box.stream.wait_ack(before[1]["id"], "playing", timeout=30)
    box.kill9()
    box.stream.wait_status("offline")  # the will (delay 0 in tests)

    during = [speak_doc(f"Later {i}.") for i in range(2)]
    resent = [before[0], before[3]]  # an operator re-sends; the broker may redeliver too
    box.publish_lines("speak", [json.dumps(d).encode() for d in during + resent])

    mark = box.stream.mark()
    box.start()
    box.wait_online(start=mark)
    for document in before + during:
        box.stream.wait_ack(document["id"], "done", timeout=60)
    for document in before + during:
        assert box.stream.acks(document["id"]).count("done") == 1, document["id"]
    for document in resent:
        assert "duplicate" in box.stream.acks(document["id"])
    assert "restored=" in box.log()
