"""Check for exercise 2: your predictions, against what the sync server counts."""

import random
from fractions import Fraction

import pytest
from support import at_once, call, reset_peaks

import predictions

EDIT = "exercises/02-workers/predictions.py"


def test_predictions_are_filled_in():
    answers = {"max_in_service": predictions.max_in_service(4),
               "max_throughput": predictions.max_throughput(4, 100),
               "connections_before_timeouts": predictions.connections_before_timeouts(4, 100, 2)}
    unanswered = [name for name, answer in answers.items() if answer is None]
    assert not unanswered, f"{', '.join(unanswered)} still return None: edit {EDIT}"


@pytest.mark.parametrize("workers", [1, 3])
def test_peak_in_service_matches_prediction(start_server, fresh_data, workers):
    server = start_server("sync", "--workers", str(workers), "--io-delay-ms", "200")
    reset_peaks(server)  # the peak counts from here
    statuses = at_once([lambda: call(server.port, "GET", "/", timeout=60).status] * 12)
    assert statuses == [200] * 12
    counted = server.stats()["peak_in_service"]
    assert predictions.max_in_service(workers) == counted, (
        f"the server counted at most {counted} views in service with --workers {workers}; "
        f"your max_in_service says {predictions.max_in_service(workers)}: edit {EDIT}")


def test_littles_law():
    assert predictions.max_throughput(4, 100) == pytest.approx(40), (
        f"4 workers, each view holding one for 100 ms: how many views a second? Edit {EDIT}")
    assert predictions.max_throughput(2, 19) == pytest.approx(105, abs=1), (
        "the article's Django: 2 workers, about 19 ms a request")
    assert predictions.connections_before_timeouts(4, 100, 2) == 80, (
        f"at 40 views a second, how many queued connections still finish within 2 s? Edit {EDIT}")


def unusual_inputs(count=20):
    """(workers, delay_ms, timeout_s) no table can hold, each with the exact answers; none
    whose connection count lands so near a whole number that float rounding decides it."""
    draw = random.Random()
    while count:
        workers, delay_ms = draw.randint(1, 64), draw.choice([draw.randint(1, 900), 12.5])
        timeout_s = draw.choice([draw.randint(1, 30), 0.75])
        throughput = Fraction(workers) * 1000 / Fraction(delay_ms)
        connections = throughput * Fraction(timeout_s)
        if abs(connections - round(connections)) > Fraction(1, 10**6):
            count -= 1
            yield workers, delay_ms, timeout_s, float(throughput), int(connections)


def test_the_formulas_hold_for_any_numbers():
    for workers, delay_ms, timeout_s, throughput, connections in unusual_inputs():
        assert predictions.max_throughput(workers, delay_ms) == pytest.approx(throughput), (
            f"max_throughput({workers}, {delay_ms}) should be {throughput:g}: edit {EDIT}")
        assert predictions.connections_before_timeouts(workers, delay_ms, timeout_s) == \
            connections, (f"connections_before_timeouts({workers}, {delay_ms}, {timeout_s}) "
                          f"should be {connections}, rounded down: edit {EDIT}")


# (workers, delay_ms, timeout_s, connections) whose exact answer is whole but whose float
# product lands just below it: 1 / 0.021 * 21 is 999.9999999999999, and int() makes it 999
WHOLE_ANSWERS = [(1, 21, 21, 1000), (3, 35, 21, 1800), (3, 225, 30, 400), (2, 168, 21, 250)]


@pytest.mark.parametrize("workers, delay_ms, timeout_s, connections", WHOLE_ANSWERS)
def test_whole_answers_survive_float_rounding(workers, delay_ms, timeout_s, connections):
    answer = predictions.connections_before_timeouts(workers, delay_ms, timeout_s)
    assert answer == connections, (
        f"connections_before_timeouts({workers}, {delay_ms}, {timeout_s}) should be "
        f"{connections}, got {answer}: floats land just below a whole number, so round off "
        f"their error (say to 6 decimals) before rounding down. Edit {EDIT}")
