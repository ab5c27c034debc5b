"""Model cards are rendered from what a trainer recorded, never typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from lutfuse.core.train import card


def _record(psnr: float) -> dict:
    return {"command": "lutfuse train student --data ../shared/data --steps 7", "args": {"steps": "7", "seed": "0"},
            "steps": 7, "parameters": 123, "seconds_this_session": 1.5,
            "train_loss_terms_mean_last_100_steps": {"loss": 0.25, "recon": 0.2},
            "validation": {"mean": {"identity": {"psnr": 15.0, "ssim": 0.7, "mef_ssim": 0.8},
                                    "student_G33": {"psnr": psnr, "ssim": 0.9, "mef_ssim": 0.95}},
                           "n_cases": 4}}


def test_card_holds_command_losses_validation_and_ablation(tmp_path: Path) -> None:
    for label, psnr in (("main", 22.5), ("no_teacher", 21.25)):
        (tmp_path / label).mkdir()
        (tmp_path / label / "metrics.json").write_text(json.dumps(_record(psnr)))
    out = tmp_path / "lut_student.md"
    assert card.main(["lut_student", str(tmp_path / "main"), "--ablation", f"no teacher={tmp_path / 'no_teacher'}",
                      "-o", str(out)]) == 0
    text = out.read_text()
    assert "lutfuse train student --data ../shared/data --steps 7" in text
    assert "| student_G33 | 22.5000 | 0.9000 | 0.9500 |" in text
    assert "| no teacher | 21.2500 | 0.9000 | 0.9500 | 7 |" in text
    assert "| train | 0.2500 | 0.2000 |" in text
    assert json.loads((tmp_path / "lut_student.metrics.json").read_text()) == _record(22.5)
    assert not list(tmp_path.glob("*.tmp"))
