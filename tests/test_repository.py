"""The project's own repository: a plain clone works with or without git-lfs installed."""

import subprocess

from pipeline.paths import REPO_ROOT


def test_only_released_files_go_through_git_lfs():
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    attributes = subprocess.run(
        ["git", "check-attr", "filter", "--stdin", "-z"],
        cwd=REPO_ROOT,
        input="\0".join(path for path in tracked if path),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    # check-attr -z answers path, attribute, value triples.
    through_lfs = [
        attributes[index]
        for index in range(0, len(attributes) - 2, 3)
        if attributes[index + 2] == "lfs"
    ]
    assert [path for path in through_lfs if not path.startswith("release/")] == []


def test_the_benchmark_picture_is_a_plain_png_in_git():
    blob = subprocess.run(
        ["git", "show", "HEAD:docs/benchmark.png"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    assert blob.startswith(b"\x89PNG\r\n\x1a\n")
