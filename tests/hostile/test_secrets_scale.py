"""``secrets`` time grows linearly with the matches in one file (issue 16: 11)."""

from __future__ import annotations

import json

from bilge.secrets.precision import github_token
from bilge.testing import docker_archive
from tests.hostile.harness import assert_bounded, run_bilge


def test_two_mib_env_of_token_lines(tmp_path):
    # 2 MiB, ~38,000 matches in one file: 112 s before (pairwise de-duplication and masking)
    # tokens with GitHub's checksum (a bad one makes the finding low: issue 12), so each is critical
    lines = "".join(f"GITHUB_TOKEN={github_token('ghp_', f'{i:030d}')}\n" for i in range((2 << 20) // 54))
    image = tmp_path / "img.tar"
    docker_archive(image, [[("file", "app/.env", lines.encode())]])
    report = tmp_path / "report.json"
    o = run_bilge(["secrets", "--format", "json", "-o", report, f"docker-archive:{image}"], tmp_path, timeout=120)
    assert o.code == 1, o.describe()
    doc = json.loads(report.read_text())
    assert len(doc["findings"]) == (2 << 20) // 54, doc.get("summary")
    assert github_token("ghp_", f"{1:030d}") not in report.read_text()  # masked
    assert_bounded(o, max_seconds=60, max_rss=600 << 20)
