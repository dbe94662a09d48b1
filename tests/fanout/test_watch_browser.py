"""The viewer page in headless browsers, on a real fanout server reading a real Kafka topic.

Chromium needs the Debian packages ``chromium`` and ``chromium-driver`` (and
``fonts-noto-color-emoji`` for emojis in the screenshot); Firefox runs too when ``firefox-esr``
and ``geckodriver`` are on PATH. A browser that is missing is skipped with that reason. The
screenshots go to the tests' temporary directories, and Chromium's also to
``EMOSTREAM_WATCH_SCREENSHOT`` (the wide page) and ``EMOSTREAM_WATCH_PHONE_SCREENSHOT`` (a phone's)
when set (``docs/images/watch.png`` and ``docs/images/watch-phone.png`` refresh the docs' copies).
"""

import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import requests
from confluent_kafka import Producer

from emostream.client import SSEParser
from emostream.common.events import encode_json
from emostream.common.tokens import mint
from emostream.localstack.process import ProcessDir
from tests.conftest import Topics
from tests.fanout.swarms import BASE_MS, WINDOW_MS, swarm_message
from tests.support.servers import start_role
from tests.support.waiting import wait_until

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
GECKODRIVER = shutil.which("geckodriver")

pytestmark = pytest.mark.integration

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")

#: Emojis of the published history, in order of first appearance.
EMOJIS = ["❤️", "😂", "👏", "😡"]
HISTORY_WINDOWS = 60
#: Windows left out of the history: nobody reacted then, so the aggregation sent nothing.
QUIET_WINDOWS = {44, 45, 46}
SERVER_ENV = {"EMOSTREAM_HEARTBEAT_S": "1", "EMOSTREAM_GRACEFUL_TIMEOUT_S": "10"}
TOKEN_SECRET = "watch-page-test-secret-of-32-bytes"  # noqa: S105 - a test secret
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T = TypeVar("T")


@pytest.fixture(scope="module")
def fanout(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[str]:
    """Base URL of a fanout server with open feeds, reading this session's swarms."""
    env = {**service_env, **SERVER_ENV}
    yield start_role(processes, "fanout-watch", "fanout", "gevent", env).url
    processes.stop("fanout-watch", grace_s=15)


@pytest.fixture(scope="module")
def token_fanout(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[str]:
    """Base URL of a fanout server whose feeds need a viewer token signed with TOKEN_SECRET."""
    env = {**service_env, **SERVER_ENV, "EMOSTREAM_TOKEN_SECRET": TOKEN_SECRET}
    yield start_role(processes, "fanout-watch-tokens", "fanout", "gevent", env).url
    processes.stop("fanout-watch-tokens", grace_s=15)


Publish = Callable[[list[dict[str, Any]]], None]


@pytest.fixture(scope="module")
def publish(kafka_bootstrap: str, topics: Topics) -> Publish:
    """Writes swarm messages to the swarms topic as the aggregation does (keyed by stream)."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})

    def publish(messages: list[dict[str, Any]]) -> None:
        for msg in messages:
            producer.produce(topics.swarms, key=msg["stream_id"].encode(), value=encode_json(msg))
        assert producer.flush(10) == 0

    return publish


def chromium() -> Any:
    """Headless Chromium through chromedriver, with the page's console log readable."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # Chromium refuses its sandbox when run as root (CI containers)
        "--disable-dev-shm-usage",
        "--window-size=1280,880",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )


def firefox() -> Any:
    """Headless Firefox through geckodriver."""
    options = webdriver.FirefoxOptions()
    options.binary_location = FIREFOX
    options.add_argument("-headless")
    options.set_preference("intl.accept_languages", "en-US")
    driver = webdriver.Firefox(
        options=options, service=webdriver.FirefoxService(executable_path=GECKODRIVER)
    )
    driver.set_window_size(1280, 880)
    return driver


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(
            chromium,
            id="chromium",
            marks=pytest.mark.skipif(
                CHROMIUM is None or CHROMEDRIVER is None,
                reason="needs headless Chromium: apt-get install -y chromium chromium-driver",
            ),
        ),
        pytest.param(
            firefox,
            id="firefox",
            marks=pytest.mark.skipif(
                FIREFOX is None or GECKODRIVER is None,
                reason="needs Firefox and geckodriver on PATH: apt-get install -y firefox-esr; "
                "cargo install geckodriver (Debian has no geckodriver package)",
            ),
        ),
    ],
)
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A headless browser session, shared by the tests of this module."""
    driver = request.param()
    try:
        yield driver
    finally:
        driver.quit()


def is_chromium(driver: Any) -> bool:
    """Whether ``driver`` drives Chromium (whose driver alone reads the page's console)."""
    return str(driver.capabilities.get("browserName")) in {"chrome", "chromium"}


@pytest.fixture
def stream() -> str:
    """A stream id no other test uses."""
    return f"watch-{uuid.uuid4().hex[:10]}"


def window_counts(window: int) -> dict[str, int]:
    """Final counts of a history window: waves of different speed, so the series differ."""
    counts = {
        "❤️": round(2600 + 1800 * math.sin(window / 5)),
        "😂": round(900 + 700 * math.sin(window / 3 + 1)),
        "👏": round(400 + 350 * math.cos(window / 4)),
        "😡": max(0, round(700 * math.sin(window / 6 - 2))),
    }
    return {e: n for e, n in counts.items() if n > 0}


def history(stream: str) -> list[dict[str, Any]]:
    """Each window twice, as running totals: a partial update, then its final counts."""
    messages = []
    batch = 0
    for window in range(HISTORY_WINDOWS):
        if window in QUIET_WINDOWS:
            continue
        final = window_counts(window)
        for counts in ({e: n // 2 + 1 for e, n in final.items()}, final):
            batch += 1
            msg = swarm_message(stream, batch, window=window, counts=counts)
            msg["sentiment"] = round(math.sin(window / 4), 4)
            messages.append(msg)
    return messages


#: What the page shows, read in one script so that elements the page replaces cannot go stale.
READ_PAGE = """
const text = (el) => el.textContent.trim();
const all = (css) => [...document.querySelectorAll(css)];
return {
  state: document.getElementById("status").dataset.state,
  status: text(document.getElementById("status")),
  viewers: text(document.getElementById("viewers")),
  viewersLabel: text(document.getElementById("viewers-label")),
  sentiment: text(document.getElementById("sentiment")),
  windows: document.getElementById("trend-chart").dataset.windows || "0",
  trendLabel: document.getElementById("trend-chart").getAttribute("aria-label"),
  floating: all("#stage .floater").map(text),
  legend: all("#trend-legend li").map((li) => [
    text(li.querySelector(".emoji")), text(li.querySelector(".latest")),
    getComputedStyle(li.querySelector(".swatch")).backgroundColor,
  ]),
  counts: all("#counts tbody tr").map((tr) => [
    text(tr.querySelector("th")), text(tr.querySelector("td")),
  ]),
  heatmap: all("#heatmap .heatmap-cell").map((cell) => [
    cell.dataset.emoji, Number(cell.dataset.start), Number(cell.dataset.count),
  ]),
  heatmapRows: all("#heatmap .heatmap-label").map(text),
};
"""


def read_page(driver: Any) -> dict[str, Any]:
    """The page's state, counts, legend and floating emojis."""
    page: dict[str, Any] = driver.execute_script(READ_PAGE)
    return page


def number(shown: str) -> int:
    """A count as the page formats it (``2,500``)."""
    return int(re.sub(r"\D", "", shown))


def as_counts(pairs: list[list[str]]) -> dict[str, int]:
    """``[emoji, shown count, ...]`` rows as emoji -> count, leaving out zeros."""
    return {row[0]: number(row[1]) for row in pairs if number(row[1])}


def page_shows(what: str, shown: Callable[[], T], timeout_s: float = 20) -> T:
    """Wait until ``shown`` returns something truthy (the page shows ``what``); return it."""
    return wait_until(f"the page to show {what}", shown, timeout_s, interval_s=0.1)


def open_page(driver: Any, fanout: str, stream: str, query: str = "") -> None:
    """Load the viewer page of ``stream`` and wait until its feed is open."""
    driver.get(f"{fanout}/watch/{stream}{query}")
    page_shows("the live connection state", lambda: read_page(driver)["state"] == "live")


#: Counts pixels of a canvas close to a CSS colour; proves a series was drawn, not only axes.
COUNT_PIXELS = """
const [canvas, css] = arguments;
const probe = document.createElement("canvas").getContext("2d");
probe.fillStyle = css;
probe.fillRect(0, 0, 1, 1);
const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let n = 0;
for (let i = 0; i < data.length; i += 4) {
  if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60
      && data[i + 3] > 200) n++;
}
return n;
"""


def console_errors(driver: Any) -> list[str]:
    """Errors the page logged (script errors, CSP violations, failed loads).

    Only Chromium's driver hands out the console; other browsers report none here.
    """
    if not is_chromium(driver):
        return []
    return [str(e["message"]) for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def save_screenshot(
    driver: Any, path: Path, target_env: str = "EMOSTREAM_WATCH_SCREENSHOT"
) -> None:
    """A PNG of the page at ``path``; Chromium's also where the variable ``target_env`` says."""
    assert driver.save_screenshot(str(path))
    assert path.read_bytes().startswith(PNG_MAGIC)
    target = os.environ.get(target_env)
    if target and is_chromium(driver):
        shutil.copyfile(path, target)


def heatmap_cells(page: dict[str, Any]) -> dict[tuple[str, int], int]:
    """The heatmap's cells as (emoji, window number) -> count."""
    return {
        (emoji, (start - BASE_MS) // WINDOW_MS): count for emoji, start, count in page["heatmap"]
    }


def expected_heatmap(windows: range) -> dict[tuple[str, int], int]:
    """Every cell of the history's windows: the final count, zero where nobody reacted."""
    return {
        (emoji, w): 0 if w in QUIET_WINDOWS else window_counts(w).get(emoji, 0)
        for emoji in EMOJIS
        for w in windows
    }


def test_page_shows_swarm_trend_and_sentiment(
    browser: Any, fanout: str, publish: Publish, stream: str, tmp_path: Path
) -> None:
    """Swarms from Kafka become floating emojis, window counts, a trend per emoji and a wave."""
    console_errors(browser)  # start from an empty console
    open_page(browser, fanout, stream)
    assert read_page(browser)["viewers"] == "—", "no viewer count is known before any swarm"
    messages = history(stream)
    publish(messages)

    final = messages[-1]
    windows = HISTORY_WINDOWS - len(QUIET_WINDOWS)
    floating = page_shows("floating emojis", lambda: read_page(browser)["floating"])
    assert set(floating) <= set(EMOJIS)
    page_shows(f"{windows} windows", lambda: read_page(browser)["windows"] == str(windows))
    page_shows(
        "the last window's final counts in the chart legend",
        lambda: as_counts(read_page(browser)["legend"]) == final["counts"],
    )

    page = read_page(browser)
    assert as_counts(page["counts"]) == final["counts"]
    assert page["sentiment"] == f"{final['sentiment']:.2f}"
    assert [row[0] for row in page["legend"]] == EMOJIS
    assert "latest window" in page["trendLabel"]
    canvas = browser.find_element("css selector", "#trend-chart canvas")
    assert canvas.size["width"] > 200
    for emoji, _, colour in page["legend"]:
        drawn = browser.execute_script(COUNT_PIXELS, canvas, colour)
        assert drawn > 20, f"no line for {emoji} in {colour}"
    wave = browser.find_element("css selector", "#sentiment-chart canvas")
    assert browser.execute_script(COUNT_PIXELS, wave, "rgb(34, 160, 70)") > 20, "no wave drawn"

    # A live window arriving in steps: what floats while the screenshot is taken.
    for step in (1, 2, 3):
        counts = {e: n * step // 3 for e, n in window_counts(HISTORY_WINDOWS).items()}
        live = swarm_message(stream, 1000 + step, window=HISTORY_WINDOWS, counts=counts)
        live["sentiment"] = 0.62
        publish([live])
        time.sleep(0.3)
    page_shows("the live window", lambda: as_counts(read_page(browser)["counts"]) == counts)
    # The heatmap: a row per emoji, a cell per window, each with that window's final count.
    page_shows(
        "the heatmap with every window's final counts",
        lambda: heatmap_cells(read_page(browser)) == expected_heatmap(range(HISTORY_WINDOWS + 1)),
    )
    assert read_page(browser)["heatmapRows"] == EMOJIS
    save_screenshot(browser, tmp_path / "watch.png")
    assert console_errors(browser) == []


def test_page_fits_a_narrow_screen(
    browser: Any, fanout: str, publish: Publish, stream: str, tmp_path: Path
) -> None:
    """On a phone-sized window the panels stack below the swarm with no sideways scrolling, and
    the heatmap's rows stay tall enough to read, its cells as wide as the screen allows."""
    browser.set_window_size(390, 844)
    try:
        open_page(browser, fanout, stream)
        publish(history(stream))
        page_shows(
            "the heatmap",
            lambda: heatmap_cells(read_page(browser)) == expected_heatmap(range(HISTORY_WINDOWS)),
        )
        layout = browser.execute_script(
            """
            const stage = document.getElementById("stage").getBoundingClientRect();
            const panels = document.querySelector(".panels").getBoundingClientRect();
            const heatmap = document.querySelector("#heatmap .heatmap-grid");
            heatmap.scrollIntoView({block: "center"});
            const grid = heatmap.getBoundingClientRect();
            const cell = heatmap.querySelector(".heatmap-cell").getBoundingClientRect();
            return {overflow: document.documentElement.scrollWidth - innerWidth,
                    stageBottom: stage.bottom, panelsTop: panels.top, panelsWidth: panels.width,
                    gridRight: grid.right, gridWidth: grid.width,
                    cellHeight: cell.height, cellWidth: cell.width};
            """
        )
        save_screenshot(browser, tmp_path / "watch-phone.png", "EMOSTREAM_WATCH_PHONE_SCREENSHOT")
    finally:
        browser.set_window_size(1280, 880)
    assert layout["overflow"] <= 0
    assert layout["panelsTop"] >= layout["stageBottom"] - 1
    assert layout["panelsWidth"] > 300
    assert layout["gridRight"] <= 390
    assert layout["gridWidth"] > 300
    assert layout["cellHeight"] >= 18
    assert layout["cellWidth"] >= 4  # 60 windows across a phone's width


class RawFeed:
    """An SSE connection read with the SDK's parser: one more viewer, and the raw messages."""

    def __init__(self, url: str) -> None:
        self.response = requests.get(url, stream=True, timeout=(5, 10))
        self.parser = SSEParser()

    def wait_open(self) -> None:
        """Once the retry hint arrived the server counts this viewer."""
        while self.parser.retry_ms is None:
            assert not self.parser.feed(self.response.raw.read1(65536))

    def next_swarm(self) -> dict[str, Any]:
        """The data of the next swarm event (heartbeats keep each read short)."""
        while True:
            events = self.parser.feed(self.response.raw.read1(65536))
            if events:
                data: dict[str, Any] = orjson.loads(events[0].data)
                return data

    def close(self) -> None:
        self.response.close()


def test_page_shows_the_viewer_count(
    browser: Any, fanout: str, publish: Publish, stream: str
) -> None:
    """Two pages and one raw feed on a stream: both pages show three viewers."""
    feed = RawFeed(f"{fanout}/v1/streams/{stream}/events")
    first = browser.current_window_handle
    try:
        feed.wait_open()
        open_page(browser, fanout, stream)
        browser.switch_to.new_window("window")
        open_page(browser, fanout, stream)
        second = browser.current_window_handle
        publish([swarm_message(stream, 1)])
        if "viewers" not in feed.next_swarm():
            pytest.skip("the fanout does not send `viewers` in its swarms yet")
        batch = 2

        def both_show_three() -> bool:
            nonlocal batch
            shown = []
            for handle in (first, second):
                browser.switch_to.window(handle)
                shown.append(read_page(browser)["viewers"])
            if shown == ["3", "3"]:
                return True
            # Counts travel with swarms: keep the stream busy until the count has settled.
            publish([swarm_message(stream, batch, window=batch)])
            batch += 1
            time.sleep(0.4)
            return False

        page_shows("3 viewers on both pages", both_show_three, timeout_s=30)
        assert read_page(browser)["viewersLabel"] == "viewers"
    finally:
        feed.close()
        for handle in browser.window_handles:
            if handle != first:
                browser.switch_to.window(handle)
                browser.close()
        browser.switch_to.window(first)


def test_page_passes_its_token_to_the_feed(
    browser: Any, token_fanout: str, publish: Publish, stream: str
) -> None:
    """The page's own ``token`` opens the feed; without one the page says it is offline."""
    browser.get(f"{token_fanout}/watch/{stream}")
    page_shows("the offline state", lambda: read_page(browser)["state"] == "offline")
    assert read_page(browser)["status"].startswith("offline, retrying in")

    token = mint(TOKEN_SECRET, view=[stream], ttl_s=600)
    open_page(browser, token_fanout, stream, f"?token={token}")
    message = swarm_message(stream, 1, counts={"👏": 1200})
    publish([message])
    page_shows("the swarm", lambda: as_counts(read_page(browser)["counts"]) == message["counts"])


#: Feeds swarm messages to the page's own modules (a WindowHistory of the given span in ms), and
#: reads how the page shows the SDK's feed states.
RUN_MODULES = """
const [spanMs, messages, done] = arguments;
Promise.all([
  import("/static/windows.js"), import("/static/feed.js"), import("/static/heatmap.js"),
  import("/static/emostream-client.min.js"),
]).then(([w, f, h, sdk]) => {
  const history = new w.WindowHistory(spanMs);
  const accepted = messages.map((m) => history.record(m) !== null);
  const emojis = history.emojis();
  const grid = h.heatmapGrid(history, emojis);
  const refused = new sdk.RequestRejectedError(
    {type: "urn:emostream:problem:invalid-token", title: "t", status: 401, detail: ""}, "u");
  done({
    accepted, emojis, series: history.series(emojis), range: history.range(),
    latest: history.latest().counts, size: history.size,
    heatmap: {starts: grid.starts, rows: Object.fromEntries(grid.rows), max: grid.max},
    states: [
      {state: "connecting", attempt: 1}, {state: "open"}, {state: "connecting", attempt: 2},
      {state: "waiting", delayMs: 4000, error: new sdk.ConnectionFailedError("reset")},
      {state: "waiting", delayMs: 4000, error: refused}, {state: "closed"},
    ].map(f.pageState),
  });
}, (error) => done({ error: String(error) }));
"""


def run_modules(driver: Any, span_ms: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What the page's window history and feed modules make of ``messages``."""
    result: dict[str, Any] = driver.execute_async_script(RUN_MODULES, span_ms, messages)
    assert "error" not in result, result
    return result


def test_page_keeps_the_newest_message_of_each_window(
    browser: Any, fanout: str, stream: str
) -> None:
    """A window's older message is ignored; quiet windows chart as zero, no sentiment and blank
    heatmap cells; the SDK's feed states read as the page's."""
    open_page(browser, fanout, stream)
    partial = swarm_message(stream, 1, window=0, counts={"❤️": 10})
    final = swarm_message(stream, 2, window=0, counts={"❤️": 30, "😂": 5})
    later = swarm_message(stream, 3, window=1, counts={"😂": 7})
    after_quiet = swarm_message(stream, 4, window=4, counts={"❤️": 2})
    for msg, sentiment in ((partial, 0.2), (final, 0.5), (later, -0.3), (after_quiet, 1.0)):
        msg["sentiment"] = sentiment
    result = run_modules(browser, 600_000, [partial, final, partial, later, after_quiet])

    assert result["accepted"] == [True, True, False, True, True]
    assert result["emojis"] == ["❤️", "😂"]
    start = BASE_MS / 1000
    assert result["series"]["x"] == [start + 2 * w for w in (0, 1, 2, 3, 4)]
    assert result["series"]["counts"] == [[30, 0, 0, 0, 2], [5, 7, 0, 0, 0]]
    assert result["series"]["sentiment"] == [0.5, -0.3, None, None, 1.0]
    assert result["latest"] == {"❤️": 2}
    assert result["heatmap"] == {
        "starts": [BASE_MS + w * WINDOW_MS for w in range(5)],
        "rows": {"❤️": [30, 0, 0, 0, 2], "😂": [5, 7, 0, 0, 0]},
        "max": 30,
    }
    assert result["states"] == [
        ["connecting"],
        ["live"],
        ["reconnecting"],
        ["reconnecting"],
        ["offline", 4000],
        ["ended"],
    ]


def test_page_forgets_windows_older_than_its_span(browser: Any, fanout: str, stream: str) -> None:
    """Only the last span of windows is kept, and a straggler from before it is ignored."""
    open_page(browser, fanout, stream)
    messages = [swarm_message(stream, w + 1, window=w) for w in range(8)]
    straggler = swarm_message(stream, 99, window=1)
    result = run_modules(browser, 5 * WINDOW_MS, [*messages, straggler])

    assert result["accepted"] == [True] * 8 + [False]
    assert result["size"] == 5
    start = BASE_MS / 1000
    assert result["series"]["x"] == [start + 2 * w for w in range(3, 8)]
    assert result["range"] == [start + 6, start + 16]
