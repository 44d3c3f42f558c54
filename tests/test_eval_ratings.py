"""The human-rating protocol: SQLite store, blinding, per-rater order, crash safety, aggregation, the widget UI."""

import base64
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import datetime
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest

from anyskill.eval.rating_stats import krippendorff_alpha_interval, mean_ci, rater_agreement, summarise_ratings
from anyskill.eval.rating_ui import DEFAULT_SCORE, RatingApp, RatingUI
from anyskill.eval.ratings import CRITERIA, RatingSession, RatingStore, StudyItem, rater_seed, rating_order

REPO = Path(__file__).resolve().parent.parent
PROMPTS = ("kick", "raise both arms", "wave hi")
METHODS = ("ours_full", "ours_no_early_termination", "vlm_rms_baseline", "avgpool_videoclip")


def _scores(k: int) -> dict[str, int]:
    return {c: (k + i) % 11 for i, c in enumerate(CRITERIA)}


@pytest.fixture
def study(tmp_path) -> tuple[RatingStore, dict[tuple[str, str], str]]:
    """3 prompts x 4 methods; each video a file under a folder named after its method (as rollouts are written)."""
    items = []
    for p, prompt in enumerate(PROMPTS):
        for m, method in enumerate(METHODS):
            video = tmp_path / "runs" / method / f"prompt{p}" / ("rollout.gif" if (p, m) == (0, 0) else "rollout.mp4")
            video.parent.mkdir(parents=True)
            video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes([p, m]) * 64)
            items.append(StudyItem(prompt, method, video))
    store = RatingStore(tmp_path / "ratings.sqlite")
    codes = store.register(items)
    return store, {(i.prompt, i.method): c for i, c in zip(items, codes, strict=True)}


def test_round_trip(study):
    store, codes = study
    assert len(set(codes.values())) == 12
    assert not any(m in c for c in codes.values() for m in METHODS)  # random codes, nothing of the method
    session = RatingSession(store, "alice")
    submitted = {}
    for k in range(5):
        code = session.current.code
        session.submit(_scores(k))
        submitted[code] = _scores(k)
    store.submit("bob", codes[("kick", "ours_full")], _scores(9))
    store.submit("bob", codes[("kick", "ours_full")], _scores(10))  # a second submission replaces the first
    table = store.ratings()
    assert len(table) == 6 and set(table.columns) >= {"rater", "timestamp", "prompt", "method", "code", *CRITERIA}
    method_of = {c: key for key, c in codes.items()}
    for row in table.itertuples():
        assert (row.prompt, row.method) == method_of[row.code]
        assert datetime.fromisoformat(row.timestamp).utcoffset().total_seconds() == 0
        expected = submitted[row.code] if row.rater == "alice" else _scores(10)
        assert {c: getattr(row, c) for c in CRITERIA} == expected
    again = store.path.parent / "kick_full_rerendered.mp4"
    again.write_bytes(b"new video")
    assert store.register([StudyItem("kick", "ours_full", again)]) == [codes[("kick", "ours_full")]]  # same code
    assert store.blind_item(codes[("kick", "ours_full")], 1, 12).video == b"new video"
    with pytest.raises(FileNotFoundError, match="ours_full"):
        store.register([StudyItem("kick", "ours_full", again.with_name("missing.mp4"))])


@pytest.mark.parametrize("bad", [{"success": 11}, {"natural": -1}, {"smooth": 5.5}, {"physics": True}])
def test_invalid_scores_are_rejected(study, bad):
    store, codes = study
    with pytest.raises(ValueError, match="integer"):
        store.submit("alice", codes[("kick", "ours_full")], {**_scores(0), **bad})
    with pytest.raises(ValueError, match="keys"):
        store.submit("alice", codes[("kick", "ours_full")], {"success": 5})
    with pytest.raises(KeyError, match="no study item"):
        store.submit("alice", "not-a-code", _scores(0))
    assert store.ratings().empty


def test_order_is_random_per_rater_grouped_by_prompt_and_stable(study):
    store, codes = study
    prompts = store.prompts()
    prompt_of = {c: p for (p, _), c in codes.items()}
    orders = {r: rating_order(prompts, r) for r in ("alice", "bob", "carol")}
    for order in orders.values():
        assert sorted(order) == sorted(codes.values())
        blocks = [prompt_of[c] for c in order]
        assert all(len(set(blocks[i:i + 4])) == 1 for i in range(0, 12, 4))  # each prompt's methods together
    assert len({tuple(o) for o in orders.values()}) == 3
    assert rating_order(prompts, "alice") == orders["alice"]
    assert rater_seed("alice") == 0xAF000E7FC906D82B  # SHA-256, the same in every process and on every machine
    firsts = {rating_order(prompts, f"rater{i}")[0] for i in range(40)}
    assert len(firsts) > 6  # the first video differs between raters (12 possible)


_WRITER = """
import sys, time
from anyskill.eval.ratings import RatingSession, RatingStore, CRITERIA
session = RatingSession(RatingStore(sys.argv[1]), sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # start together with the other writers
k = 0
while not session.finished:
    code = session.current.code
    session.submit({c: (k + i) % 11 for i, c in enumerate(CRITERIA)})
    print(code, k, flush=True)
    k += 1
    time.sleep(float(sys.argv[3]))
"""


def _writer(path: Path, rater: str, pause_s: float = 0.0) -> subprocess.Popen:
    """A process rating every item of the study as ``rater``; it starts when sent a line on stdin."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_WRITER), str(path), rater, str(pause_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_concurrent_writers_lose_nothing(study):
    store, codes = study
    procs = [_writer(store.path, f"proc{i}") for i in range(3)]
    go = threading.Barrier(3 + 1)

    def rate_all(rater: str) -> None:
        session = RatingSession(RatingStore(store.path), rater)
        go.wait()
        while not session.finished:
            session.submit(_scores(session.done))

    threads = [threading.Thread(target=rate_all, args=(f"thread{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    go.wait()
    for t in threads:
        t.join()
    for p in procs:
        assert p.wait(timeout=60) == 0
        p.stdin.close()
        p.stdout.close()
    table = store.ratings()
    assert len(table) == 6 * 12
    assert (table.groupby("rater").code.nunique() == 12).all()
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_crash_mid_session_loses_nothing_submitted(study):
    store, codes = study
    proc = _writer(store.path, "crasher", pause_s=0.05)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    confirmed = {}
    for line in proc.stdout:  # the writer prints each code after its submission returned
        code, k = line.split()
        confirmed[code] = int(k)
        if len(confirmed) == 5:
            break
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up, no close: as a killed kernel
    proc.wait(timeout=10)
    proc.stdin.close()
    proc.stdout.close()
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    table = store.ratings().set_index("code")
    assert set(confirmed) <= set(table.index)
    for code, k in confirmed.items():
        assert {c: table.loc[code, c] for c in CRITERIA} == _scores(k)
    resumed = RatingSession(store, "crasher")  # picks up after the last stored rating, in the same order
    assert resumed.done == len(table)
    assert resumed.current.code == rating_order(store.prompts(), "crasher")[len(table)]


def test_mean_ci_is_students_t_interval():
    mean, low, high = mean_ci(np.array([4.0, 6.0, 8.0]))
    half = 4.302652729911275 * 2.0 / np.sqrt(3)  # t_{0.975, 2} * s / sqrt(n), s = 2
    assert (mean, low, high) == pytest.approx((6.0, 6.0 - half, 6.0 + half))
    one = mean_ci(np.array([3.0]))
    assert one[0] == 3.0 and np.isnan(one[1]) and np.isnan(one[2])


def test_summarise_ratings_by_rater_and_by_rating():
    rows = []
    for rater, offset in (("a", 0), ("b", 2), ("c", 4)):
        for prompt in ("p1", "p2"):  # rater means of method m: 4, 6, 8
            value = 3 + offset if prompt == "p1" else 5 + offset
            rows.append({"rater": rater, "method": "m", "code": prompt, **{c: value for c in CRITERIA}})
    summary = summarise_ratings(pd.DataFrame(rows)).set_index("criterion")
    half = 4.302652729911275 * 2.0 / np.sqrt(3)
    assert summary.loc["success", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx([6, 6 - half, 6 + half])
    assert summary.loc["physics", "n_units"] == 3 and summary.loc["physics", "n_ratings"] == 6
    by_rating = summarise_ratings(pd.DataFrame(rows), unit="rating").set_index("criterion")
    values = np.array([3, 5, 5, 7, 7, 9.0])
    half = 2.5705818366147395 * values.std(ddof=1) / np.sqrt(6)
    assert by_rating.loc["smooth", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx([6, 6 - half, 6 + half])


def test_krippendorff_alpha_interval():
    n = np.nan  # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with missing data
    data = np.array([[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
                     [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
                     [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
                     [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]])
    assert krippendorff_alpha_interval(data) == pytest.approx(0.849, abs=5e-4)  # the paper's interval alpha
    assert krippendorff_alpha_interval(np.array([[1, 5, 9.0], [1, 5, 9]])) == 1.0
    assert krippendorff_alpha_interval(np.array([[1, 9.0], [9, 1]])) < 0  # systematic disagreement
    assert np.isnan(krippendorff_alpha_interval(np.full((2, 3), 4.0)))  # no variation: undefined
    assert np.isnan(krippendorff_alpha_interval(np.array([[1, n], [n, 2]])))  # nothing pairable


def test_rater_agreement_from_the_store(study):
    store, codes = study
    for rater, shift in (("a", 0), ("b", 0)):
        for k, code in enumerate(sorted(codes.values())):
            store.submit(rater, code, {c: (k + shift) % 11 for c in CRITERIA})
    agree = rater_agreement(store.ratings()).set_index("criterion")
    assert (agree["alpha"] == 1.0).all() and (agree["units"] == 12).all() and (agree["raters"] == 2).all()


def _widgets(root: widgets.Widget) -> list[widgets.Widget]:
    """Every widget reachable from ``root`` through its traits (children, layout, style, ...)."""
    seen: dict[int, widgets.Widget] = {}
    stack = [root]
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen[id(w)] = w
        for name in w.keys:
            value = getattr(w, name)
            values = value if isinstance(value, (tuple, list)) else (value,)
            stack += [v for v in values if isinstance(v, widgets.Widget)]
    return list(seen.values())


def _strings(state) -> str:
    if isinstance(state, dict):
        return " ".join(_strings(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return " ".join(_strings(v) for v in state)
    return bytes(state).decode("latin-1") if isinstance(state, (bytes, memoryview)) else str(state)


def test_rating_ui_submits_headlessly_and_never_sees_the_key(study):
    store, codes = study
    ui = RatingUI(RatingSession(store, "dana"))
    order = rating_order(store.prompts(), "dana")
    video_of = {c: Path(v) for c, v in sqlite3.connect(store.path).execute("SELECT code, video FROM items")}
    shown = []
    for k, code in enumerate(order):
        assert f"Video {k + 1} of 12" in ui.header.value
        media, data = ui.media.children[0], video_of[code].read_bytes()
        if video_of[code].suffix == ".gif":
            assert isinstance(media, widgets.Image) and media.value == data
        else:  # a muted HTML5 <video> holding the bytes inline, that starts itself
            assert isinstance(media, widgets.HTML) and base64.b64encode(data).decode() in media.value
            assert all(a in media.value for a in ("<video", "autoplay", "muted", "loop", "play()"))
        assert all(s.value == DEFAULT_SCORE for s in ui.sliders.values())
        shown.append(_strings([w.get_state() for w in _widgets(ui.widget) + [ui.video, ui.image]]))
        for i, criterion in enumerate(CRITERIA):
            ui.sliders[criterion].value = (k + i) % 11
        ui.submit_button.click()
    assert ui.submit_button.disabled and "all 12 videos" in ui.header.value
    table = store.ratings().set_index("code")
    assert list(store.ratings().code) == order
    assert all({c: table.loc[code, c] for c in CRITERIA} == _scores(k) for k, code in enumerate(order))
    for text in shown:  # no method name and no video path ever reached a widget's state
        assert not any(m in text for m in METHODS)
        assert not any(str(p.parent) in text for p in video_of.values())


def test_rating_ui_keeps_the_item_when_saving_fails(study, monkeypatch):
    store, _ = study
    ui = RatingUI(RatingSession(store, "erin"))
    first = ui.header.value

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "submit", locked)
    ui.submit()
    assert "Not saved" in ui.status.value and ui.header.value == first and ui.session.done == 0
    monkeypatch.undo()
    ui.submit()
    assert ui.session.done == 1 and "Video 2 of 12" in ui.header.value


def test_rating_app_asks_for_the_rater_and_resumes(study):
    store, _ = study
    store.submit("fay", rating_order(store.prompts(), "fay")[0], _scores(0))  # fay rated one video earlier
    app = RatingApp(store)
    app.start_button.click()
    assert app.ui is None and "rater id" in app.status.value
    app.rater.value = "  fay "
    app.start_button.click()
    assert app.widget.children == (app.ui.widget,) and "Video 2 of 12" in app.ui.header.value
