"""Render the control room of the demo town to SVG (``make screenshots``).

A copy of ``examples/town`` is prepared in a temp directory, one headless
patrol runs on it (so there are runs, a failure and its escalation), a
high-severity escalation is raised by hand, and the app is driven headless to
each screen the README shows.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gtcore.town.layout import Town
from gtui.tui.app import GtuiApp

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
SIZE = (160, 48)


def gtui(town: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "gtui", "--town", str(town), *args], check=False, capture_output=True)


def prepare(work: Path) -> Path:
    town = work / "town"
    shutil.copytree(ROOT / "examples" / "town", town, ignore=shutil.ignore_patterns(".gtui"))
    subprocess.run(["bash", str(town / "setup-demo.sh"), str(town)], check=True, capture_output=True)
    gtui(town, "--once", "--wait", "--event", "startup")
    gtui(town, "escalate", "disk on sprocket is 93% full", "--severity", "high", "--source", "disk-report",
         "--body", "df reports 93% used on /srv/sprocket.")
    gtui(town, "escalate", "nightly backup did not report", "--severity", "medium", "--source", "backup")
    return town


async def shoot(town: Path) -> None:
    app = GtuiApp(Town(town), live=False)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(50):
            await pilot.pause(0.1)
            if app.snapshot is not None:
                break
        await pilot.pause(0.3)
        app.save_screenshot(str(OUT / "main.svg"))
        await pilot.press("enter")
        await pilot.pause(0.8)
        app.save_screenshot(str(OUT / "plugin-details.svg"))
        await pilot.press("escape", "question_mark")
        await pilot.pause(0.3)
        app.save_screenshot(str(OUT / "help.svg"))
        await pilot.press("escape", "4", "z")
        await pilot.pause(0.3)
        app.save_screenshot(str(OUT / "escalations.svg"))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gtui-shots-") as work:
        town = prepare(Path(work))
        try:
            asyncio.run(shoot(town))
        finally:
            gtui(town, "kennel", "stop")  # the kennel the patrol started goes with the town
    for name in ("main", "plugin-details", "help", "escalations"):
        print(OUT / f"{name}.svg")


if __name__ == "__main__":
    main()
