"""What a failed or killed job leaves: its error in the rule's log, no half-written output after a restart."""

import subprocess
import sys

from rrhf.io import atomic_path, start_job, write_json


def test_an_uncaught_error_is_written_to_the_rules_log_with_its_traceback(tmp_path):
    log = tmp_path / "logs" / "job.log"
    program = (f"from rrhf.io import setup_logging\nsetup_logging({str(log)!r})\n"
               "def stage():\n    raise ValueError('scored.parquet row 3: reward is NaN')\nstage()\n")
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert completed.returncode == 1
    text = log.read_text()
    assert "ValueError: scored.parquet row 3: reward is NaN" in text
    assert "Traceback (most recent call last)" in text and "in stage" in text
    assert text.count("reward is NaN") == completed.stderr.count("reward is NaN")  # once each, not twice on stderr


def test_a_killed_write_is_cleaned_up_by_the_next_write_of_the_same_output_only(tmp_path):
    (tmp_path / ".D.partial-abc123").mkdir()  # a kill during the save of model D
    (tmp_path / ".D.partial-abc123" / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".DP.partial-xyz789").mkdir()  # another job's save, still going on
    (tmp_path / ".metrics.json.partial-q1w2e3").write_text("{")
    with atomic_path(tmp_path / "D", directory=True) as folder:
        assert folder.name.startswith(".D.partial-")
        (folder / "model.safetensors").write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".DP.partial-xyz789", ".metrics.json.partial-q1w2e3", "D"]
    write_json({"a": 1}, tmp_path / "metrics.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".DP.partial-xyz789", "D", "metrics.json"]


def test_a_restarted_training_job_removes_its_half_written_model_when_it_starts(tmp_path):
    models = tmp_path / "results/models/instruct"
    (models / ".DP.partial-k9").mkdir(parents=True)
    (models / ".DP.partial-k9" / "model.safetensors").write_bytes(b"x" * 1000)
    start_job(tmp_path / "train.log", models / "DP")
    assert not (models / ".DP.partial-k9").exists()
    assert "removed a half-written copy of" in (tmp_path / "train.log").read_text()
