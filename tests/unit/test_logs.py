from __future__ import annotations

import stat

from transfers.logs import get_logger, run_log


def test_lines_inside_a_run_also_go_to_its_log_file_and_no_others(tmp_path, capsys):
    log = get_logger("test")
    path = tmp_path / "logs" / "agreement" / "A" / "2026-11-24.log"

    log.info("before the run")
    with run_log(path):
        log.info("extracted", rows=3)
    log.info("after the run")

    text = path.read_text()
    assert "extracted" in text and "rows=3" in text
    assert "before the run" not in text and "after the run" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "before the run" in capsys.readouterr().err  # stderr still gets every line
