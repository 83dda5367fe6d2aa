"""The status column: one definition of a finished case, read alike by every stage."""

from harness.rows.columns import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, finished


def test_a_finished_case_is_status_ok_whatever_its_case_or_spaces() -> None:
    assert finished({"status": STATUS_OK})
    assert finished({"status": " OK "})  # a cases.csv edited by hand


def test_skipped_failed_empty_and_missing_status_are_not_finished() -> None:
    for row in ({"status": STATUS_SKIPPED}, {"status": STATUS_FAILED}, {"status": ""}, {}):
        assert not finished(row)
    assert not finished({"status": "okay"})
