"""Hostile Dockerfiles: ``lint`` neither recurses per word, re-parses every prefix, grows super-linearly,
nor reads a device or waits on a FIFO (issue 16: 6, 12, 13, 14)."""

from __future__ import annotations

import os

import pytest

from tests.hostile.harness import assert_bounded, assert_clean_error, run_bilge


def _write(tmp_path, text: str):
    p = tmp_path / "Dockerfile"
    p.write_text(text)
    return p


@pytest.mark.parametrize("wrapper", ["nice", "env", "sudo", "env A=1", "timeout 5"])
def test_wrapper_words_do_not_recurse(tmp_path, wrapper):
    p = _write(tmp_path, "FROM debian\nRUN " + f"{wrapper} " * 3000 + "apt-get install -y gcc\n")
    o = run_bilge(["lint", "--format", "json", p], tmp_path, timeout=60)
    assert o.code in (0, 1) and "Traceback" not in o.stderr, o.describe()
    assert_bounded(o, max_seconds=30, max_rss=400 << 20)


def test_wrapped_command_is_still_seen(tmp_path):
    # the unwrapping loop still reaches the command behind a few wrappers
    p = _write(tmp_path, "FROM debian\nRUN sudo -u root env A=1 nice apt-get update\n")
    o = run_bilge(["lint", "--format", "json", p], tmp_path)
    assert o.code == 1 and "apt" in o.stdout, o.describe()


def test_parse_error_at_the_end_of_a_long_file(tmp_path):
    p = _write(tmp_path, "FROM scratch\n" + "RUN true\n" * 3000 + "RUN <<EOF\nx\n")
    o = run_bilge(["lint", p], tmp_path, timeout=120)
    # before: every prefix re-parsed, 152 s and 1.3 GB for these 3,000 lines
    assert_clean_error(o, contains=":3002: unterminated heredoc", max_seconds=20, max_rss=400 << 20)


def test_many_chained_stages(tmp_path):
    p = _write(tmp_path, "FROM debian AS s0\n" + "".join(
        f"FROM s{i} AS s{i + 1}\nRUN echo {i} > /tmp/f{i} && rm -rf /tmp/f{i - 1}\n" for i in range(1200)))
    o = run_bilge(["lint", "--format", "json", p], tmp_path, timeout=120)
    assert o.code in (0, 1) and "Traceback" not in o.stderr, o.describe()
    assert_bounded(o, max_seconds=40, max_rss=600 << 20)


def test_device_is_refused(tmp_path):
    o = run_bilge(["lint", "/dev/zero"], tmp_path, timeout=30)
    assert_clean_error(o, contains="not a regular file", max_seconds=10, max_rss=200 << 20)


def test_fifo_without_writer_is_refused(tmp_path):
    fifo = tmp_path / "Dockerfile"
    os.mkfifo(fifo)
    o = run_bilge(["lint", fifo], tmp_path, timeout=30)
    assert_clean_error(o, contains="not a regular file", max_seconds=10, max_rss=200 << 20)


def test_endless_stdin_is_cut_off(tmp_path):
    with open("/dev/zero", "rb") as zero:
        o = run_bilge(["lint", "-"], tmp_path, timeout=60, stdin=zero.fileno())
    assert_clean_error(o, contains="larger than", max_seconds=20, max_rss=300 << 20)


def test_huge_file_is_refused_without_reading_it_all(tmp_path):
    p = tmp_path / "Dockerfile"
    with open(p, "wb") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GiB of NULs
    o = run_bilge(["lint", p], tmp_path, timeout=60)
    assert_clean_error(o, contains="larger than", max_seconds=20, max_rss=300 << 20)
