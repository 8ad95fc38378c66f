"""Prompt preprocessing and encoding."""

from __future__ import annotations

import pytest
import torch
from conftest import needs_parity, parity_manifest

from show1_core.captions import preprocess_prompt
from show1_core.text import encode_prompt

T5_CASES = [c for c in (parity_manifest() or {"cases": []})["cases"] if c["id"].startswith("t5_")]


@needs_parity
@pytest.mark.parametrize("case", T5_CASES, ids=[c["id"] for c in T5_CASES])
def test_preprocessing_matches_the_published_pipelines(case):
    call = case["call"]
    assert preprocess_prompt(call["prompt"], call["clean_caption"]) == call["processed_prompt"]
    assert preprocess_prompt(call["negative_prompt"] or "", call["clean_caption"]) == call["processed_negative_prompt"]


def test_cleaning_removes_urls_handles_and_html():
    text = "See https://example.com/a.png <b>BIG</b> @user #12 “quoted”"
    assert preprocess_prompt(text, clean=False) == text.lower()
    assert preprocess_prompt(text, clean=True) == 'see big "quoted"'


def test_encode_prompt_pairs_and_widths(demo):
    t5 = encode_prompt(demo["t5"], "A cat on a sofa", "blurry", clean_caption=True)
    clip = encode_prompt(demo["clip"], "A cat on a sofa", "blurry")
    assert t5.positive.shape == (1, 77, 32) and t5.encoder == "t5"
    assert clip.negative.shape == (1, 77, 32) and clip.encoder == "clip"
    pair = t5.pair()
    assert torch.equal(pair[0], t5.negative[0]) and torch.equal(pair[1], t5.positive[0])
    assert not torch.equal(t5.positive, t5.negative)
    again = encode_prompt(demo["t5"], "A cat on a sofa", "blurry", clean_caption=True)
    assert torch.equal(again.positive, t5.positive)
