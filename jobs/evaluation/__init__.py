"""Pure evaluation logic behind `privacyalign evaluate` and `privacyalign judge-eval`.

Benchmark adapters (items in, prompts and checks out), metric arithmetic and report rendering live
here; they import no Ray or vLLM, so they are tested on hand-made verdicts. The job entry points
(jobs/evaluate.py, jobs/judge_eval.py) wire them to the rollout actors and the judge.
"""
