"""Pure parts of the benchmark harness: workload registry, table formatting, target evaluation (no timing)."""

from __future__ import annotations

import json

import pytest

from jobs.benchmarks.report import SectionResult, evaluate_targets, format_section, format_table, write_json
from jobs.benchmarks.workloads import W1_MODEL, WORKLOADS, ModelShape, get_workload


def test_w1_is_the_issue_shape():
    w1 = get_workload("W1")
    assert (w1.model.arch, w1.model.hidden_size, w1.model.num_layers, w1.model.vocab_size) == ("qwen2", 256, 4, 4096)
    assert (w1.prompts_per_step, w1.samples_per_prompt, w1.max_new_tokens, w1.enable_ignore_eos) == (8, 4, 64, True)
    assert w1.samples_per_step == 32
    assert get_workload("GPU-Q3-0.6B").model.num_kv_heads == 8


def test_unknown_workload_lists_valid_names():
    with pytest.raises(ValueError, match="valid: .*W1"):
        get_workload("w1")


def test_parameter_count_by_hand():
    # hidden 4, 1 layer, 2 heads of 2, 1 kv head, MLP 8, vocab 10, qwen2:
    # embed 40; q 4x4=16, k,v 4x2 each=16, o 16, biases 4+2+2=8; mlp 3*4*8=96; 2 norms 8; final norm 4.
    shape = ModelShape("t", "qwen2", 4, 1, 2, 1, 2, 8, 10)
    assert shape.num_parameters == 40 + (16 + 16 + 16 + 8 + 96 + 8) + 4
    # W1 (tied embeddings) is about 5M parameters, as built by learner/tiny_model.py's `w1` size.
    assert 4_000_000 < W1_MODEL.num_parameters < 6_000_000
    sync = WORKLOADS["W1"].sync_shapes
    assert [s.num_parameters for s in sync] == sorted(s.num_parameters for s in sync)
    assert 20e6 < sync[1].num_parameters < 30e6 and 90e6 < sync[2].num_parameters < 110e6


def test_bad_shapes_and_workloads_are_rejected():
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        ModelShape("t", "qwen2", 8, 1, 3, 2, 4, 8, 10)
    with pytest.raises(ValueError, match="qwen2 or qwen3"):
        ModelShape("t", "llama", 8, 1, 2, 2, 4, 8, 10)


def test_table_aligns_and_formats_numbers():
    text = format_table("T", ["name", "tok/s", "n"], [{"name": "a", "tok/s": 1234.5678, "n": 1000}, {"name": "bb"}])
    lines = text.splitlines()
    assert lines[0] == "T"
    assert lines[1] == "name    tok/s      n"
    assert lines[3] == "a     1,234.6  1,000"
    assert lines[4] == "bb          -      -"
    assert len({len(line) for line in lines[1:]}) == 1


def test_skipped_section_prints_its_reason():
    text = format_section(SectionResult("sync", "Weight sync", skipped="needs 30 GiB", notes=["n1"]))
    assert "skipped: needs 30 GiB" in text and "note: n1" in text


def _results(**metrics_by_section: dict[str, float]) -> dict[str, SectionResult]:
    return {name: SectionResult(name, name, metrics=m) for name, m in metrics_by_section.items()}


def test_targets_pass_miss_and_na():
    results = _results(
        e2e={"ours_samples_per_s": 30.0, "trl_samples_per_s": 10.0},  # 3.0 >= 3 → PASS (bound inclusive)
        schedule={"async_step_s": 1.2, "slowest_stage_s": 1.0},  # 1.2 > 1.15 → MISS
        rollout={"actor_tokens_per_s": 89.0, "bare_tokens_per_s": 100.0},  # 0.89 < 0.9 → MISS
        sync={"object_store_gb_per_s": 1.0},  # memcpy missing → N/A
        driver={"bytes_per_step_small": 1000.0, "bytes_per_step_large": 1050.0},  # 1.05 <= 1.1 → PASS
        # pool 1 replica / in-process: 0.95 → PASS; 2 replicas / twice one: 14 / 19 = 0.74 → MISS
        judge={
            "vllm_in_process_requests_per_s": 10.0,
            "vllm_pool_requests_per_s_r1": 9.5,
            "vllm_pool_requests_per_s_r2": 14.0,
        },
    )
    rows = {r["target"]: r for r in evaluate_targets(results)}
    assert rows["e2e vs TRL"]["status"] == "PASS" and rows["e2e vs TRL"]["ratio"] == pytest.approx(3.0)
    assert rows["async overlap"]["status"] == "MISS" and rows["async overlap"]["ratio"] == pytest.approx(1.2)
    assert rows["rollout overhead"]["status"] == "MISS"
    assert rows["weight sync"]["status"] == "N/A" and "memcpy_gb_per_s" in rows["weight sync"]["why"]
    assert rows["driver bytes"]["status"] == "PASS"
    assert rows["judge pool overhead"]["status"] == "PASS" and rows["judge pool overhead"]["ratio"] == pytest.approx(
        0.95
    )
    assert rows["judge scaling"]["status"] == "MISS" and rows["judge scaling"]["ratio"] == pytest.approx(14 / 19)


def test_targets_na_when_section_skipped_or_absent_or_zero():
    results = {"e2e": SectionResult("e2e", "e2e", skipped="TRL install failed")}
    results.update(_results(driver={"bytes_per_step_small": 0.0, "bytes_per_step_large": 5.0}))
    rows = {r["target"]: r for r in evaluate_targets(results)}
    assert rows["e2e vs TRL"]["why"] == "TRL install failed"
    assert rows["rollout overhead"]["why"] == "not run"
    assert rows["driver bytes"]["why"] == "zero denominator"
    assert {r["status"] for r in rows.values()} == {"N/A"}


def test_json_round_trip(tmp_path):
    results = _results(rollout={"actor_tokens_per_s": 95.0, "bare_tokens_per_s": 100.0})
    path = write_json(tmp_path / "a" / "b.json", {"workload": "W1"}, results, evaluate_targets(results))
    doc = json.loads(path.read_text())
    assert doc["workload"] == "W1"
    assert doc["sections"]["rollout"]["metrics"]["actor_tokens_per_s"] == 95.0
    assert [t["status"] for t in doc["targets"] if t["target"] == "rollout overhead"] == ["PASS"]


def test_median_is_robust_to_one_slow_repeat():
    from jobs.benchmarks.report import median

    assert median([1.0, 9.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 4.0
    with pytest.raises(ValueError):
        median([])
