"""The short chaos drill CI runs (`make chaos` runs the long one): nothing lost, nothing differs."""

import pytest

from tests.chaos.drill import Drill, notable_log_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_short_chaos_drill_loses_no_event_and_matches_a_clean_run(tmp_path):
    report = Drill(duration_s=75, rate=80, kills=3, folder=tmp_path).run()
    print("\n".join(report.lines()))
    assert report.input_records > 3000 and report.valid_events > 0 and report.dead_letters > 0
    if not report.passed:
        pytest.fail("\n".join(report.lines() + notable_log_lines(tmp_path)), pytrace=False)
