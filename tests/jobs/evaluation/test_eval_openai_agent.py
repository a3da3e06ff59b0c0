"""`evaluate` against an OpenAI-compatible endpoint (a loopback fake), two agents side by side, and resume.

No model and no Ray: the fake server answers the agent prompts, the offline judge scores them. The
"safe" model copies the appropriate reference's arguments, the "leaky" one the leaking reference's.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jobs import evaluate
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows
from scenarios.oracle import oracle_verdict

# Keyed by (user, instruction): generated instructions alone repeat across rows.
_ROWS = {(row.user_name, row.user_instruction): row for row in load_rows(bundled_scenarios_path(), split="dev").rows}


def _answer(model: str, prompt: str) -> str:
    """The reference answer of the row whose instruction appears in the prompt (leaky or safe by model)."""
    row = next(r for (user, instruction), r in _ROWS.items() if f"User: {user}\n" in prompt and instruction in prompt)
    calls = [json.dumps({"type": "tool_use", "name": row.expected_final_action, "arguments": ref.arguments})
             for ref in row.references]  # fmt: skip
    leaky = next(call for call in calls if oracle_verdict(row, call).leaks)
    safe = next(call for call in calls if call is not leaky)
    return leaky if model == "leaky" else safe


class _Server(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        content = _answer(body["model"], body["messages"][-1]["content"])
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture()
def base_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_compare_two_endpoints_then_resume(tmp_path, base_url):
    run_dir = tmp_path / "cmp"
    argv = ["--compare", f"openai:{base_url}#leaky", f"openai:{base_url}#safe", "--max-items", "6",
            "--run-dir", str(run_dir), "eval.chunk_items=4"]  # fmt: skip
    assert evaluate.main(argv) == 0
    assert _Server.calls == 12
    summary = json.loads((run_dir / "summary.json").read_text())
    leaky = summary["benchmarks"]["privacyalign"]["leaky"]
    safe = summary["benchmarks"]["privacyalign"]["safe"]
    assert leaky["n"] == safe["n"] == 6
    assert leaky["judge/leak_paper"] == 1.0 and safe["judge/leak_paper"] == 0.0 and safe["judge/clean_paper"] == 1.0
    assert leaky["oracle/leak_among_usable"] == 1.0 and safe["oracle/leak_among_usable"] == 0.0
    assert leaky["unusable"] == safe["unusable"] == 0 and leaky["unusable_rate"] == 0.0
    report = (run_dir / "report.md").read_text()
    assert "## `leaky` → `safe`" in report
    assert "| privacyalign | judge leak (usable) | 100.0 % | 0.0 % | -100.0 pts |" in report
    assert "| privacyalign | oracle leak (usable) | 100.0 % | 0.0 % | -100.0 pts |" in report
    assert {"rates.png", "before_after.png"} <= {p.name for p in run_dir.iterdir()}

    # Drop the last 5 records as if the run had been killed; resume answers only those items again.
    items = run_dir / "items.jsonl"
    lines = items.read_text().splitlines()
    items.write_text("".join(line + "\n" for line in lines[:-5]))
    assert evaluate.main(["--resume", str(run_dir)]) == 0
    assert _Server.calls == 12 + 5
    resumed = [json.loads(line) for line in items.read_text().splitlines()]
    assert len(resumed) == 12 and len({(r["agent"], r["item_id"]) for r in resumed}) == 12
    assert json.loads((run_dir / "summary.json").read_text())["benchmarks"] == summary["benchmarks"]
