"""The demo's defaults point where the README says, wherever the module lives in the tree."""

from pathlib import Path

from streamer.tools import demo

CHECKOUT = Path(__file__).resolve().parents[2]


def test_the_demo_reads_the_shared_sample_data_beside_the_checkout():
    assert CHECKOUT.parent / "shared" / "data" / "rsc15-100k" == demo.DEFAULT_DATA


def test_the_demo_keeps_its_model_under_the_checkouts_var_directory():
    assert demo.PROJECT_ROOT == CHECKOUT
