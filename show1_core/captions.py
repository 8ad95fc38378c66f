"""DeepFloyd IF's caption cleaning, which Show-1's pixel pipelines apply before T5 encoding.

The rules are data: they must match the published pipelines character for character, or the
prompt tokens (and so the video) change. Ported from DeepFloyd IF / diffusers (Apache-2.0).
"""

from __future__ import annotations

import html
import re
import urllib.parse as ul

BAD_PUNCT = re.compile(r"[" + "#®•©™&@·º½¾¿¡§~" + r"\)" + r"\(" + r"\]" + r"\[" + r"\}" + r"\{" + r"\|" + "\\"
                       + r"\/" + r"\*" + r"]{1,}")
DASHES = (r"[\u002D\u058A\u05BE\u1400\u1806\u2010-\u2015\u2E17\u2E1A\u2E3A\u2E3B\u2E40\u301C\u3030\u30A0"
          r"\uFE31\uFE32\uFE58\uFE63\uFF0D]+")
URL_PATTERNS = (
    r"\b((?:https?:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))",
    r"\b((?:www:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))",
)
CJK_RANGES = (r"[\u31c0-\u31ef]+", r"[\u31f0-\u31ff]+", r"[\u3200-\u32ff]+", r"[\u3300-\u33ff]+",
              r"[\u3400-\u4dbf]+", r"[\u4dc0-\u4dff]+", r"[\u4e00-\u9fff]+")


def clean_caption(caption: str) -> str:
    """One pass of IF's `_clean_caption` (the pipelines apply it twice)."""
    import ftfy
    from bs4 import BeautifulSoup

    caption = ul.unquote_plus(str(caption))
    caption = caption.strip().lower()
    caption = re.sub("<person>", "person", caption)
    for pattern in URL_PATTERNS:
        caption = re.sub(pattern, "", caption)
    caption = BeautifulSoup(caption, features="html.parser").text
    caption = re.sub(r"@[\w\d]+\b", "", caption)
    for pattern in CJK_RANGES:
        caption = re.sub(pattern, "", caption)
    caption = re.sub(DASHES, "-", caption)
    caption = re.sub(r"[`´«»“”¨]", '"', caption)
    caption = re.sub(r"[‘’]", "'", caption)
    caption = re.sub(r"&quot;?", "", caption)
    caption = re.sub(r"&amp", "", caption)
    caption = re.sub(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", " ", caption)  # ip addresses
    caption = re.sub(r"\d:\d\d\s+$", "", caption)  # article ids
    caption = re.sub(r"\\n", " ", caption)
    caption = re.sub(r"#\d{1,3}\b", "", caption)
    caption = re.sub(r"#\d{5,}\b", "", caption)
    caption = re.sub(r"\b\d{6,}\b", "", caption)
    caption = re.sub(r"[\S]+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)", "", caption)  # file names
    caption = re.sub(r"[\"\']{2,}", r'"', caption)
    caption = re.sub(r"[\.]{2,}", r" ", caption)
    caption = re.sub(BAD_PUNCT, r" ", caption)
    caption = re.sub(r"\s+\.\s+", r" ", caption)
    separators = re.compile(r"(?:\-|\_)")  # this-is-my-cute-cat / this_is_my_cute_cat
    if len(re.findall(separators, caption)) > 3:
        caption = re.sub(separators, " ", caption)
    caption = ftfy.fix_text(caption)
    caption = html.unescape(html.unescape(caption))
    caption = re.sub(r"\b[a-zA-Z]{1,3}\d{3,15}\b", "", caption)  # jc6640
    caption = re.sub(r"\b[a-zA-Z]+\d+[a-zA-Z]+\b", "", caption)  # jc6640vc
    caption = re.sub(r"\b\d+[a-zA-Z]+\d+\b", "", caption)  # 6640vc231
    caption = re.sub(r"(worldwide\s+)?(free\s+)?shipping", "", caption)
    caption = re.sub(r"(free\s)?download(\sfree)?", "", caption)
    caption = re.sub(r"\bclick\b\s(?:for|on)\s\w+", "", caption)
    caption = re.sub(r"\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\simage[s]?)?", "", caption)
    caption = re.sub(r"\bpage\s+\d+\b", "", caption)
    caption = re.sub(r"\b\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*\b", r" ", caption)  # j2d1a2a...
    caption = re.sub(r"\b\d+\.?\d*[xх×]\d+\.?\d*\b", "", caption)
    caption = re.sub(r"\b\s+\:\s+", r": ", caption)
    caption = re.sub(r"(\D[,\./])\b", r"\1 ", caption)
    caption = re.sub(r"\s+", " ", caption)
    caption = re.sub(r"^[\"\']([\w\W]+)[\"\']$", r"\1", caption)
    caption = re.sub(r"^[\'\_,\-\:;]", r"", caption)
    caption = re.sub(r"[\'\_,\-\:\-\+]$", r"", caption)
    caption = re.sub(r"^\.\S+$", "", caption)
    return caption.strip()


def preprocess_prompt(text: str, clean: bool) -> str:
    """What the pixel pipelines hand to the T5 tokenizer: cleaned twice, or lower-cased and stripped."""
    if clean:
        return clean_caption(clean_caption(text))
    return text.lower().strip()
