"""A PNG of the release page as headless Chromium draws it: for the docs and the test."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pipeline.report.sources import ReportError

# Debian's package is `chromium` (make system-deps installs it); a Chrome already there works too.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1200, 3300)
MARGIN_PX = 16


def find_browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    raise ReportError("no headless browser found; run `make system-deps` (Debian: chromium)")


def screenshot(page: Path, png: Path, window: tuple[int, int] = WINDOW) -> None:
    """Draw `page` in a fresh headless profile, with no network service, into `png`."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        completed = subprocess.run(
            [
                find_browser(),
                "--headless",
                "--no-sandbox",  # root in CI containers; the page is our own file
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={window[0]},{window[1]}",
                Path(page).resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if completed.returncode != 0 or not png.is_file():
        raise ReportError(f"chromium could not draw {page}: {completed.stderr.strip()[-500:]}")


def read_rgb(png: Path) -> np.ndarray:
    """The PNG as an (height, width, 3) array of 0-255 integers."""
    from matplotlib.image import imread

    return np.rint(imread(png)[:, :, :3] * 255).astype(int)


def crop_to_content(png: Path) -> None:
    """Cut the white below the page's last drawn row (the window is taller than the page)."""
    from matplotlib.image import imsave

    image = read_rgb(png)
    drawn_rows = np.flatnonzero(np.any(image < 250, axis=(1, 2)))
    if drawn_rows.size:
        bottom = min(len(image), int(drawn_rows[-1]) + MARGIN_PX)
        imsave(png, image[:bottom].astype(np.uint8))
